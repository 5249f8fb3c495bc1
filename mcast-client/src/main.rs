//! mcast-client binary: a thin shell over the library's command line.

fn main() -> std::process::ExitCode {
    mcast_client::cli::main()
}
