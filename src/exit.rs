//! Exit codes, decided here for every command, and how a failure is reported.

/// Something failed at run time (a model, the store, the bus).
pub const EXIT_FAILURE: u8 = 1;
/// The configuration or the command line is wrong.
pub const EXIT_CONFIG: u8 = 2;
/// Some input was rejected (dead-lettered), the rest went through.
pub const EXIT_REJECTED: u8 = 3;
/// Exit code for a query about something that does not exist (an unknown customer).
pub const EXIT_NOT_FOUND: u8 = 4;

/// Prints `rapport: <message>` to stderr and gives `code`: `.map_err(fail(EXIT_CONFIG))`.
pub fn fail(code: u8) -> impl FnOnce(String) -> u8 {
    move |message| {
        eprintln!("rapport: {message}");
        code
    }
}
