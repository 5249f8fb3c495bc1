//! mcast-server binary: a thin shell over the library's command line.

fn main() -> std::process::ExitCode {
    mcast_server::cli::main()
}
