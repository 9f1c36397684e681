//! `export_guest!` expands to the ABI's exports: compiled here for the
//! host and called with empty ranges (a host pointer is no wasm32 offset,
//! so only the paths that read no guest memory are called).

use hyperverse_guest::{export_guest, host, Call, Guest, Status};

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

#[test]
fn the_exports_drive_the_guest() {
    use __hyperverse_guest_exports as ex;
    assert_eq!(ex::hv_abi_version(), 1);
    host::take();
    // SAFETY: empty ranges read nothing.
    unsafe {
        assert_eq!(ex::handle(0, 0, 0, 0), hyperverse_guest::glue::NOT_STARTED);
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
    assert_eq!(ex::snapshot() & 0xffff_ffff, 8, "the count's 8 bytes");
    // SAFETY: an empty range reads nothing; a restore of nothing fails.
    assert_eq!(unsafe { ex::restore(0, 0) }, 5);
}
