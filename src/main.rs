//! The `dispatch-risk` binary: everything lives in the library; this only picks the allocator
//! and hands over the exit code.

/// mimalloc rather than glibc's malloc: scoring a batch allocates and frees many small strings
/// across threads (see the README's service figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dispatch_risk::cli::main()
}
