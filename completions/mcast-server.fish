# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mcast_server_global_optspecs
    string join \n h/help V/version
end

function __fish_mcast_server_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mcast_server_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mcast_server_using_subcommand
    set -l cmd (__fish_mcast_server_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mcast-server -n "__fish_mcast_server_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mcast-server -n "__fish_mcast_server_needs_command" -s V -l version -d 'Print version'
complete -c mcast-server -n "__fish_mcast_server_needs_command" -f -a "run" -d 'Run the server (validates the configuration first)'
complete -c mcast-server -n "__fish_mcast_server_needs_command" -f -a "check-config" -d 'Validate the configuration and the keys file it names, print a summary'
complete -c mcast-server -n "__fish_mcast_server_needs_command" -f -a "status" -d 'Show a running server\'s state: sync, destinations, counters, clients'
complete -c mcast-server -n "__fish_mcast_server_needs_command" -f -a "import-ntp-conf" -d 'Translate ntpd\'s ntp.conf (broadcast, keys, restrict...) into this server\'s TOML'
complete -c mcast-server -n "__fish_mcast_server_using_subcommand run" -s c -l config -d 'Configuration file (TOML); see config/examples/server.toml' -r -F
complete -c mcast-server -n "__fish_mcast_server_using_subcommand run" -s h -l help -d 'Print help'
complete -c mcast-server -n "__fish_mcast_server_using_subcommand check-config" -s c -l config -d 'Configuration file (TOML); see config/examples/server.toml' -r -F
complete -c mcast-server -n "__fish_mcast_server_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c mcast-server -n "__fish_mcast_server_using_subcommand status" -s c -l config -d 'Configuration file whose control socket to ask' -r -F
complete -c mcast-server -n "__fish_mcast_server_using_subcommand status" -l socket -d 'Control socket to ask (overrides the one in the configuration)' -r -F
complete -c mcast-server -n "__fish_mcast_server_using_subcommand status" -l json -d 'Print JSON instead of a table'
complete -c mcast-server -n "__fish_mcast_server_using_subcommand status" -s h -l help -d 'Print help'
complete -c mcast-server -n "__fish_mcast_server_using_subcommand import-ntp-conf" -s o -l output -d 'Write the TOML to FILE instead of standard output' -r -F
complete -c mcast-server -n "__fish_mcast_server_using_subcommand import-ntp-conf" -l interface -d 'Interface to send on (ntp.conf cannot say), e.g. bond0' -r
complete -c mcast-server -n "__fish_mcast_server_using_subcommand import-ntp-conf" -l force -d 'Replace the output file if it exists'
complete -c mcast-server -n "__fish_mcast_server_using_subcommand import-ntp-conf" -s h -l help -d 'Print help'
