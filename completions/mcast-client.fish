# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mcast_client_global_optspecs
    string join \n h/help V/version
end

function __fish_mcast_client_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mcast_client_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mcast_client_using_subcommand
    set -l cmd (__fish_mcast_client_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mcast-client -n "__fish_mcast_client_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -s V -l version -d 'Print version'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "run" -d 'Run the client (validates the configuration first)'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "check-config" -d 'Validate the configuration and the keys file it names, print a summary'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "status" -d 'Show a running client\'s servers: state, calibration, offsets, rejections'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "check" -d 'Monitoring-plugin check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "wait-sync" -d 'Wait until the running client is synchronized: exit 0, or 1 on --timeout'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "step-now" -d 'Step the clock once to the selected time (past the panic threshold)'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "now" -d 'Print earliest and latest true time now, from the published error bound (ClockBound)'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "recalibrate" -d 'Rerun the calibration volley for one server'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "listen" -d 'Diagnostic: join a group and print every packet heard and its verdict'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "analyze" -d 'Summarise the NTP traffic in a tcpdump capture (pcap or pcapng)'
complete -c mcast-client -n "__fish_mcast_client_needs_command" -f -a "import-ntp-conf" -d 'Translate ntpd\'s ntp.conf (multicastclient, keys, tinker...) into this client\'s TOML'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand run" -s c -l config -d 'Configuration file (TOML); see config/examples/client.toml' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand run" -l force -d 'Start in slew or step mode even while another daemon disciplines the clock'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand run" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check-config" -s c -l config -d 'Configuration file (TOML); see config/examples/client.toml' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand status" -s c -l config -d 'Configuration file whose control socket to use' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand status" -l socket -d 'Control socket (overrides the configuration\'s)' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand status" -l json -d 'Print JSON instead of the table'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand status" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -s c -l config -d 'Configuration file whose control socket to use' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -l socket -d 'Control socket (overrides the configuration\'s)' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -s w -l warning -d 'Warning threshold for |offset|, seconds' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -s C -l critical -d 'Critical threshold for |offset|, seconds (-C: -c is the configuration file, as for every subcommand)' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -l jitter -d 'Warning threshold for the system jitter, seconds' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -l stratum -d 'Warning when the client\'s stratum (the system peer\'s plus one) is above this' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -l stale-intervals -d 'Warning when no verified broadcast came for this many of the longest broadcast interval' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -l stale-critical-intervals -d 'Critical when no verified broadcast came for this many intervals' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -l min-agreeing -d 'Servers that must be selected [default: the running client\'s selection.min-agreeing]' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand check" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand wait-sync" -s c -l config -d 'Configuration file whose control socket to use' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand wait-sync" -l socket -d 'Control socket (overrides the configuration\'s)' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand wait-sync" -l timeout -d 'Give up after this many seconds (0: wait for ever)' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand wait-sync" -l max-offset -d 'Also require |selected offset| <= this many seconds' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand wait-sync" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand step-now" -s c -l config -d 'Configuration file whose control socket to use' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand step-now" -l socket -d 'Control socket (overrides the configuration\'s)' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand step-now" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand now" -s c -l config -d 'Configuration file whose [clock-bound] path to read' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand now" -l path -d 'The segment (overrides the configuration\'s; with it no configuration is read)' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand now" -l json -d 'Print one JSON object instead of lines of text'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand now" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand recalibrate" -s c -l config -d 'Configuration file whose control socket to use' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand recalibrate" -l socket -d 'Control socket (overrides the configuration\'s)' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand recalibrate" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand listen" -l group -d 'Multicast group (or IPv4 broadcast address) to listen to' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand listen" -l interface -d 'Interface to join the group on, by name (e.g. bond0, lo)' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand listen" -l keys -d 'ntpd keys file to check MACs with' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand listen" -l port -d 'UDP port' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand listen" -l count -d 'Stop after this many packets' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand listen" -l timeout-s -d 'Stop after this many seconds (default: until Ctrl-C)' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand listen" -l json -d 'Print one JSON object per packet instead of a line of text'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand listen" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand analyze" -l keys -d 'Keys file (ntpd syntax) to check every MAC with' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand analyze" -l port -d 'NTP port: UDP datagrams from or to it are analysed' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand analyze" -l top -d 'How many top talkers to list' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand analyze" -l json -d 'Print the report as JSON instead of tables'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand analyze" -s h -l help -d 'Print help'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand import-ntp-conf" -s o -l output -d 'Write the TOML to FILE instead of standard output' -r -F
complete -c mcast-client -n "__fish_mcast_client_using_subcommand import-ntp-conf" -l interface -d 'Interface to join the groups on (ntp.conf cannot say), e.g. bond0' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand import-ntp-conf" -l server -d 'A server to trust and the key id it signs with (repeatable)' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand import-ntp-conf" -l broadcast-address -d 'The subnet broadcast address `broadcastclient` listens on' -r
complete -c mcast-client -n "__fish_mcast_client_using_subcommand import-ntp-conf" -l force -d 'Replace the output file if it exists'
complete -c mcast-client -n "__fish_mcast_client_using_subcommand import-ntp-conf" -s h -l help -d 'Print help'
