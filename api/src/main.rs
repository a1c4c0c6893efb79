fn main() -> std::process::ExitCode {
    parlo::cli::main()
}
