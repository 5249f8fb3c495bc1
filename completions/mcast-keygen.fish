# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mcast_keygen_global_optspecs
    string join \n h/help V/version
end

function __fish_mcast_keygen_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mcast_keygen_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mcast_keygen_using_subcommand
    set -l cmd (__fish_mcast_keygen_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mcast-keygen -n "__fish_mcast_keygen_needs_command" -s h -l help -d 'Print help'
complete -c mcast-keygen -n "__fish_mcast_keygen_needs_command" -s V -l version -d 'Print version'
complete -c mcast-keygen -n "__fish_mcast_keygen_needs_command" -f -a "generate" -d 'Write a new keys file (by default exactly like `ntp-keygen -M`)'
complete -c mcast-keygen -n "__fish_mcast_keygen_needs_command" -f -a "signing-key" -d 'Make a server\'s Ed25519 signing key (private file, mode 0600) and print the public key line clients pin, with its fingerprint'
complete -c mcast-keygen -n "__fish_mcast_keygen_needs_command" -f -a "public-key" -d 'Print the public key line and fingerprint of a signing key file'
complete -c mcast-keygen -n "__fish_mcast_keygen_needs_command" -f -a "check" -d 'Validate a keys file and list its keys (never the secrets)'
complete -c mcast-keygen -n "__fish_mcast_keygen_needs_command" -f -a "rotate" -d 'Append a new key with the next free id to a keys file; print its id'
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand generate" -s o -l output -d 'Output file, or `-` for standard output' -r -F
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand generate" -l md5 -d 'Number of MD5 keys (20 printable ASCII characters)' -r
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand generate" -l sha1 -d 'Number of SHA1 keys (40 hex digits)' -r
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand generate" -l aes128cmac -d 'Number of AES128CMAC keys (32 hex digits)' -r
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand generate" -l hmac-sha256 -d 'Number of HMAC-SHA256 keys (64 hex digits; mcast-ntp only)' -r
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand generate" -l first-id -d 'Id of the first key' -r
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand generate" -l force -d 'Replace FILE if it exists'
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand generate" -s h -l help -d 'Print help'
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand signing-key" -s o -l output -d 'The private key file to create' -r -F
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand signing-key" -l force -d 'Replace FILE if it exists'
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand signing-key" -s h -l help -d 'Print help'
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand public-key" -s h -l help -d 'Print help'
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand check" -s h -l help -d 'Print help'
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand rotate" -l keys -d 'The keys file to add the key to' -r -F
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand rotate" -l type -d 'The new key\'s type: MD5, SHA1, AES128CMAC or HMAC-SHA256 (mcast-ntp only)' -r
complete -c mcast-keygen -n "__fish_mcast_keygen_using_subcommand rotate" -s h -l help -d 'Print help'
