use std::process::ExitCode;

fn main() -> ExitCode {
    schedulezero::cli::main()
}
