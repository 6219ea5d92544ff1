//! The `dispatch-risk` binary: everything lives in the library; this only sets up the allocator
//! and hands over the exit code.

/// mimalloc rather than glibc's malloc: scoring a batch allocates and frees many small strings
/// across threads, where glibc's malloc took ~16 % of a batch's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Freed memory is kept a second (mimalloc's default: 10 ms) before it goes back to the OS,
    // so back-to-back batches reuse it rather than fault in and zero fresh pages (~3 % of a
    // batch's CPU; batches ~5 % faster in the service bench). MIMALLOC_PURGE_DELAY, if set,
    // still decides.
    // SAFETY: sets an option's default before any thread is started; mimalloc reads options
    // atomically and accepts any value for this one.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 1000) };
    dispatch_risk::cli::main()
}
