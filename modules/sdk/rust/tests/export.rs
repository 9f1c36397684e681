//! `export_guest!` expands to the ABI's exports, version 2's callbacks
//! included: compiled here for the host and called with empty ranges (a
//! host pointer is no wasm32 offset, so only the paths that read no guest
//! memory are called).

use hyperverse_guest::{export_guest, host, Call, CrashNotice, Guest, Status, Tag};

struct Counter(u64);

impl Guest for Counter {
    fn init(_: &[u8]) -> Result<Self, Status> {
        Ok(Counter(0))
    }
    fn handle(&mut self, call: &mut Call<'_>) -> Result<(), Status> {
        // Every wave counts; the reply is the count.
        self.0 += 1;
        call.reply(&self.0.to_le_bytes());
        Ok(())
    }
    // The callbacks log what they were given, for the test to read.
    fn on_reply(
        &mut self,
        call: &mut Call<'_>,
        tag: Tag,
        outcome: Result<&[u8], &str>,
    ) -> Result<(), Status> {
        call.log(3, &format!("reply {} {:?}", tag.0, outcome));
        Ok(())
    }
    fn on_crash_notice(&mut self, call: &mut Call<'_>, n: CrashNotice<'_>) -> Result<(), Status> {
        call.log(
            3,
            &format!("notice {:?} {} {}", n.code, n.restarts, n.gave_up),
        );
        if n.code == Some(13) {
            return Err(Status(6));
        }
        Ok(())
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
    fn restore(state: &[u8]) -> Result<Self, Status> {
        hyperverse_guest::u64_le(state)
            .map(Counter)
            .ok_or(Status(5))
    }
}

export_guest!(Counter);

fn logged(message: &str) -> host::HostCall {
    host::HostCall::Log {
        level: 3,
        message: message.into(),
    }
}

// One test: the exports share one static state, as in a guest instance.
#[test]
fn the_exports_drive_the_guest() {
    use __hyperverse_guest_exports as ex;
    assert_eq!(ex::hv_abi_version(), 2, "the guest speaks ABI v2");
    host::take();
    // SAFETY: empty ranges read nothing.
    unsafe {
        assert_eq!(ex::handle(0, 0, 0, 0), hyperverse_guest::glue::NOT_STARTED);
        assert_eq!(
            ex::on_reply(1, 0, 0, 0),
            hyperverse_guest::glue::NOT_STARTED
        );
        assert_eq!(ex::init(0, 0), 0);
        assert_eq!(ex::handle(0, 0, 0, 0), 0);
        assert_eq!(ex::handle(0, 0, 0, 0), 0);
    }
    assert_eq!(
        host::take(),
        vec![
            host::HostCall::Reply(1u64.to_le_bytes().to_vec()),
            host::HostCall::Reply(2u64.to_le_bytes().to_vec()),
        ]
    );

    // Version 2's callbacks, with the exact signatures the host checks
    // (modules/src/abi.rs: ON_REPLY `(i64, i32, i32, i32) -> i32`,
    // ON_CRASH_NOTICE `(i32 × 7) -> i32`): a mismatch fails to compile.
    let _: unsafe extern "C" fn(i64, i32, i32, i32) -> i32 = ex::on_reply;
    let _: unsafe extern "C" fn(i32, i32, i32, i32, i32, i32, i32) -> i32 = ex::on_crash_notice;
    // SAFETY: empty ranges read nothing.
    unsafe {
        assert_eq!(ex::on_reply(i64::MAX, 0, 0, 0), 0);
        assert_eq!(ex::on_reply(7, 1, 0, 0), 0);
        assert_eq!(ex::on_crash_notice(0, 0, 42, 0, 0, 2, 1), 0);
        assert_eq!(ex::on_crash_notice(0, 0, -1, 0, 0, 0, 0), 0);
        assert_eq!(ex::on_crash_notice(0, 0, 13, 0, 0, 0, 0), 6);
    }
    assert_eq!(
        host::take(),
        vec![
            logged(&format!("reply {} Ok([])", i64::MAX)),
            logged("reply 7 Err(\"\")"),
            logged("notice Some(42) 2 true"),
            logged("notice None 0 false"),
            logged("notice Some(13) 0 false"),
        ]
    );

    assert_eq!(ex::snapshot() & 0xffff_ffff, 8, "the count's 8 bytes");
    // SAFETY: an empty range reads nothing; a restore of nothing fails.
    assert_eq!(unsafe { ex::restore(0, 0) }, 5);
}
