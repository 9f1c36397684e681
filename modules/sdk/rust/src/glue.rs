//! What [`crate::export_guest!`]'s exports call: the ABI's calls turned
//! into [`Guest`] calls and status codes, independent of wasm32 so that
//! they are tested on the host.

use crate::{Call, CrashNotice, Guest, Tag, TEXT_BUFFER};

/// The status of a `handle` before any `init` (the host never does this).
pub const NOT_STARTED: i32 = 3;
/// The status of a wave whose method is not UTF-8 (the host never sends
/// one).
pub const BAD_METHOD: i32 = 4;
/// The status of a callback whose text (a crash notice's child or reason,
/// a failed outcome's reason) is not UTF-8 (the host never sends one).
pub const BAD_TEXT: i32 = 5;

/// A Call with no wave, for the calls that are not `handle`.
fn no_wave() -> Call<'static> {
    Call {
        method: "",
        body: &[],
    }
}

/// The bytes the host hands in (through `alloc`) and the last snapshot:
/// each allocation its own boxed slice, so a pointer stays valid until
/// [`Arena::reset`], which the exports call at the end of each call.
#[derive(Debug, Default)]
pub struct Arena {
    chunks: Vec<Box<[u8]>>,
    snapshot: Vec<u8>,
}

impl Arena {
    /// An empty arena.
    pub const fn new() -> Self {
        Arena {
            chunks: Vec::new(),
            snapshot: Vec::new(),
        }
    }

    /// `len` writable bytes, valid until the next [`Arena::reset`].
    pub fn alloc(&mut self, len: usize) -> *mut u8 {
        let mut chunk = vec![0u8; len].into_boxed_slice();
        let at = chunk.as_mut_ptr();
        self.chunks.push(chunk);
        at
    }

    /// Frees what was allocated (the snapshot stays until the next one).
    pub fn reset(&mut self) {
        self.chunks.clear();
    }

    /// How many allocations are live.
    pub fn live(&self) -> usize {
        self.chunks.len()
    }
}

/// The inbox's size: bytes a call hands in that fit are written there.
pub const INBOX_BYTES: usize = 1024;

/// The inbox (the `hv_inbox` export): a fixed buffer in the guest's
/// memory where the host writes a call's bytes when they fit, instead of
/// calling `alloc` for room, which saves a guest call per wave. What is
/// written there is valid for that call only, as the arena's bytes are.
pub struct Inbox(core::cell::UnsafeCell<[u8; INBOX_BYTES]>);

// SAFETY: a wasm32 guest is single-threaded, and only the host writes the
// inbox, between calls; the guest reads it during a call.
unsafe impl Sync for Inbox {}

impl Inbox {
    /// A zeroed inbox.
    pub const fn new() -> Self {
        Inbox(core::cell::UnsafeCell::new([0; INBOX_BYTES]))
    }

    /// `(ptr << 32) | len`, what `hv_inbox` returns (on wasm32, where a
    /// pointer is 32 bits).
    pub fn packed(&self) -> i64 {
        let ptr = self.0.get() as usize as u32;
        ((u64::from(ptr) << 32) | INBOX_BYTES as u64) as i64
    }
}

impl Default for Inbox {
    fn default() -> Self {
        Self::new()
    }
}

/// The bytes at `ptr..ptr + len` of the guest's memory.
///
/// # Safety
///
/// Only on wasm32, for a range the host wrote (it checks ranges against
/// the memory before calling).
pub unsafe fn bytes<'a>(ptr: i32, len: i32) -> &'a [u8] {
    if len <= 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(ptr as u32 as usize as *const u8, len as u32 as usize) }
}

/// A status that is a refusal: never 0, whatever the guest gave.
fn refusal(status: i32) -> i32 {
    if status == 0 {
        1
    } else {
        status
    }
}

/// `init`: a new incarnation in `state`, then its [`Guest::started`] (in
/// the same call, so what it queues leaves only if both succeed). The
/// state is set only if both do.
pub fn init<G: Guest>(state: &mut Option<G>, args: &[u8]) -> i32 {
    let started = G::init(args).and_then(|mut g| {
        g.started(&mut no_wave())?;
        Ok(g)
    });
    match started {
        Ok(g) => {
            *state = Some(g);
            0
        }
        Err(s) => refusal(s.0),
    }
}

/// `handle`: one wave.
pub fn handle<G: Guest>(state: &mut Option<G>, method: &[u8], body: &[u8]) -> i32 {
    let Some(guest) = state.as_mut() else {
        return NOT_STARTED;
    };
    let Ok(method) = core::str::from_utf8(method) else {
        return BAD_METHOD;
    };
    match guest.handle(&mut Call { method, body }) {
        Ok(()) => 0,
        Err(s) => refusal(s.0),
    }
}

/// `on_reply`: the outcome of a tagged request (status 0: `body` is the
/// reply; anything else: `body` is the reason, UTF-8).
pub fn on_reply<G: Guest>(state: &mut Option<G>, tag: i64, status: i32, body: &[u8]) -> i32 {
    let Some(guest) = state.as_mut() else {
        return NOT_STARTED;
    };
    let outcome = if status == 0 {
        Ok(body)
    } else {
        match core::str::from_utf8(body) {
            Ok(reason) => Err(reason),
            Err(_) => return BAD_TEXT,
        }
    };
    match guest.on_reply(&mut no_wave(), Tag(tag as u64), outcome) {
        Ok(()) => 0,
        Err(s) => refusal(s.0),
    }
}

/// `on_crash_notice`: a child crashed. `code` -1 is "not an `hv.crash`"
/// (`None`); a negative restart count (never sent) reads as 0.
pub fn on_crash_notice<G: Guest>(
    state: &mut Option<G>,
    child: &[u8],
    code: i32,
    reason: &[u8],
    restarts: i32,
    gave_up: bool,
) -> i32 {
    let Some(guest) = state.as_mut() else {
        return NOT_STARTED;
    };
    let (Ok(child), Ok(reason)) = (core::str::from_utf8(child), core::str::from_utf8(reason))
    else {
        return BAD_TEXT;
    };
    let notice = CrashNotice {
        child,
        code: (code != -1).then_some(code),
        reason,
        restarts: restarts.max(0) as u32,
        gave_up,
    };
    match guest.on_crash_notice(&mut no_wave(), notice) {
        Ok(()) => 0,
        Err(s) => refusal(s.0),
    }
}

/// Reads a text the host writes into a buffer of the guest's choosing
/// (`hv.self`, `hv.parent`): `write(buf)` writes it if it fits and returns
/// its full length (negative: there is none). The first try offers
/// [`TEXT_BUFFER`] bytes; if the text is longer, it is read again into a
/// buffer of exactly its length (again, should it have grown meanwhile).
///
/// ```
/// use hyperverse_guest::glue::read_text;
/// let long = "a".repeat(100);
/// let mut caps = Vec::new();
/// let got = read_text(|buf| {
///     caps.push(buf.len());
///     if let Some(room) = buf.get_mut(..long.len()) {
///         room.copy_from_slice(long.as_bytes());
///     }
///     long.len() as i32
/// });
/// assert_eq!(got.as_deref(), Some(long.as_str()));
/// assert_eq!(caps, vec![64, 100], "too small, then exactly enough");
/// assert_eq!(read_text(|_| -1), None);
/// ```
pub fn read_text(mut write: impl FnMut(&mut [u8]) -> i32) -> Option<String> {
    let mut buf = vec![0u8; TEXT_BUFFER];
    loop {
        let len = usize::try_from(write(&mut buf)).ok()?;
        if len <= buf.len() {
            buf.truncate(len);
            return Some(match String::from_utf8(buf) {
                Ok(text) => text,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            });
        }
        buf.resize(len, 0);
    }
}

/// `snapshot`: the state's bytes, kept in `arena` until the next snapshot,
/// as the packed `(ptr << 32) | len` the ABI returns.
pub fn snapshot<G: Guest>(state: &mut Option<G>, arena: &mut Arena) -> i64 {
    arena.snapshot = state.as_ref().map(G::snapshot).unwrap_or_default();
    pack(
        arena.snapshot.as_ptr() as usize as u32,
        arena.snapshot.len() as u32,
    )
}

/// `restore`: a new incarnation from a snapshot, in `state`.
pub fn restore<G: Guest>(state: &mut Option<G>, bytes: &[u8]) -> i32 {
    match G::restore(bytes) {
        Ok(g) => {
            *state = Some(g);
            0
        }
        Err(s) => refusal(s.0),
    }
}

/// The ABI's packed pointer and length.
pub fn pack(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{self, HostCall};
    use crate::Status;

    /// Echoes, sends to its parent, refuses `fail`.
    #[derive(Debug, PartialEq)]
    struct Echo(u32);

    impl Guest for Echo {
        fn init(args: &[u8]) -> Result<Self, Status> {
            if args == b"refuse" {
                return Err(Status(0)); // a refusal, however it is spelled
            }
            Ok(Echo(0))
        }
        fn handle(&mut self, call: &mut Call<'_>) -> Result<(), Status> {
            self.0 += 1;
            match call.method {
                "fail" => Err(Status(7)),
                "tell" => {
                    call.send("parent", "told", call.body);
                    call.log(2, "told");
                    Ok(())
                }
                _ => {
                    let body = call.body.to_vec();
                    call.reply(&body);
                    Ok(())
                }
            }
        }
        fn snapshot(&self) -> Vec<u8> {
            self.0.to_le_bytes().to_vec()
        }
        fn restore(state: &[u8]) -> Result<Self, Status> {
            let b: [u8; 4] = state.try_into().map_err(|_| Status(9))?;
            Ok(Echo(u32::from_le_bytes(b)))
        }
    }

    #[test]
    fn calls_become_guest_calls_and_statuses() {
        host::take();
        let mut state: Option<Echo> = None;
        assert_eq!(handle(&mut state, b"x", b""), NOT_STARTED);
        assert_eq!(
            init(&mut state, b"refuse"),
            1,
            "status 0 is still a refusal"
        );
        assert_eq!(init(&mut state, b""), 0);
        assert_eq!(handle(&mut state, b"ping", b"hi"), 0);
        assert_eq!(handle(&mut state, b"tell", b"x"), 0);
        assert_eq!(handle(&mut state, b"fail", b""), 7);
        assert_eq!(handle(&mut state, &[0xff, 0xfe], b""), BAD_METHOD);
        assert_eq!(
            host::take(),
            vec![
                HostCall::Reply(b"hi".to_vec()),
                HostCall::Send {
                    to: "parent".into(),
                    method: "told".into(),
                    body: b"x".to_vec()
                },
                HostCall::Log {
                    level: 2,
                    message: "told".into()
                },
            ]
        );
        assert_eq!(state, Some(Echo(3)));
    }

    #[test]
    fn snapshots_and_restores_carry_the_state() {
        let mut state = Some(Echo(41));
        let mut arena = Arena::new();
        let packed = snapshot(&mut state, &mut arena);
        assert_eq!(packed & 0xffff_ffff, 4, "the length");
        assert_eq!(arena.snapshot, 41u32.to_le_bytes());
        let mut next: Option<Echo> = None;
        assert_eq!(restore(&mut next, &arena.snapshot.clone()), 0);
        assert_eq!(next, Some(Echo(41)));
        assert_eq!(restore(&mut next, b"bad"), 9);
        assert_eq!(next, Some(Echo(41)), "a failed restore changes nothing");
        assert_eq!(pack(0x1234, 5), 0x1234_0000_0005);
    }

    #[test]
    fn the_inbox_packs_its_address_and_size() {
        let inbox = Inbox::new();
        let packed = inbox.packed() as u64;
        assert_eq!(packed & 0xffff_ffff, INBOX_BYTES as u64);
        assert_eq!((packed >> 32) as u32, inbox.0.get() as usize as u32);
    }

    #[test]
    fn the_arena_keeps_each_allocation_until_reset() {
        let mut a = Arena::new();
        let p = a.alloc(16);
        let q = a.alloc(0);
        // SAFETY: 16 bytes were allocated at p.
        unsafe { p.write_bytes(0xab, 16) };
        assert_ne!(p, q);
        assert_eq!(a.live(), 2);
        // SAFETY: still live.
        assert_eq!(unsafe { *p.add(15) }, 0xab);
        a.reset();
        assert_eq!(a.live(), 0);
    }

    /// A supervisor of temporary workers (ABI v2): spawns `args[0]`
    /// workers of Kind `wasm:worker` when started, respawns one on each
    /// crash notice, asks workers on `ask`, and keeps what comes back.
    #[derive(Debug, Default, PartialEq)]
    struct Sup {
        workers: u8,
        spawning: Vec<Tag>,
        asking: Option<Tag>,
        replies: Vec<Result<Vec<u8>, String>>,
        crashes: Vec<(String, Option<i32>, u32, bool)>,
    }

    impl Guest for Sup {
        fn init(args: &[u8]) -> Result<Self, Status> {
            let workers = *args.first().ok_or(Status(2))?;
            Ok(Sup {
                workers,
                ..Sup::default()
            })
        }
        fn started(&mut self, call: &mut Call<'_>) -> Result<(), Status> {
            for i in 0..self.workers {
                let name = format!("w{i}");
                let tag = call
                    .spawn(&name, "wasm:worker", &[i], crate::Restart::Temporary)
                    .map_err(|_| Status(3))?;
                self.spawning.push(tag);
            }
            Ok(())
        }
        fn handle(&mut self, call: &mut Call<'_>) -> Result<(), Status> {
            match call.method {
                "ask" => {
                    let to = core::str::from_utf8(call.body).map_err(|_| Status(4))?;
                    match call.ask(to, "get", b"", 250) {
                        Ok(tag) => self.asking = Some(tag),
                        Err(refused) => call.reply(&refused.code().to_le_bytes()),
                    }
                }
                "tick" => {
                    let id = call.timer(30, "tock", b"t").map_err(|_| Status(5))?;
                    call.reply(&id.0.to_le_bytes());
                }
                "stop" => {
                    call.stop("sup:w0").map_err(|_| Status(6))?;
                }
                "die" => {
                    call.crash(7, "asked to die");
                }
                "who" => {
                    let text = format!("{}|{:?}|{}", call.me(), call.parent(), call.restarts());
                    call.reply(text.as_bytes());
                }
                _ => return Err(Status(1)),
            }
            Ok(())
        }
        fn on_reply(
            &mut self,
            _: &mut Call<'_>,
            tag: Tag,
            outcome: Result<&[u8], &str>,
        ) -> Result<(), Status> {
            if self.asking == Some(tag) {
                self.asking = None;
                self.replies
                    .push(outcome.map(<[u8]>::to_vec).map_err(str::to_string));
                Ok(())
            } else if let Some(at) = self.spawning.iter().position(|t| *t == tag) {
                self.spawning.remove(at);
                Ok(())
            } else {
                Err(Status(9)) // a tag it never made
            }
        }
        fn on_crash_notice(
            &mut self,
            call: &mut Call<'_>,
            notice: CrashNotice<'_>,
        ) -> Result<(), Status> {
            self.crashes.push((
                notice.child.to_string(),
                notice.code,
                notice.restarts,
                notice.gave_up,
            ));
            if notice.gave_up {
                let name = notice.child.rsplit(':').next().unwrap_or_default();
                let tag = call
                    .spawn(name, "wasm:worker", b"", crate::Restart::Temporary)
                    .map_err(|_| Status(3))?;
                self.spawning.push(tag);
            }
            Ok(())
        }
        fn snapshot(&self) -> Vec<u8> {
            vec![self.workers]
        }
        fn restore(state: &[u8]) -> Result<Self, Status> {
            Self::init(state)
        }
    }

    fn spawn_call(name: &str, args: &[u8]) -> HostCall {
        HostCall::Spawn {
            name: name.into(),
            kind: "wasm:worker".into(),
            args: args.to_vec(),
            flags: 1,
        }
    }

    #[test]
    fn started_spawns_in_the_init_call_and_a_refusal_there_fails_init() {
        host::reset();
        let mut state: Option<Sup> = None;
        assert_eq!(init(&mut state, b"\x02"), 0);
        assert_eq!(
            host::take(),
            vec![spawn_call("w0", &[0]), spawn_call("w1", &[1])],
            "temporary: flags bit 0"
        );
        let sup = state.as_ref().unwrap();
        assert_eq!(sup.spawning, vec![Tag(1), Tag(2)], "the fake's fresh tags");

        // The host refuses the second spawn: started fails, so init fails
        // and leaves no state behind.
        host::fake(|f| f.answers.extend([7, -1]));
        let mut fresh: Option<Sup> = None;
        assert_eq!(init(&mut fresh, b"\x02"), 3);
        assert_eq!(fresh, None);
        assert_eq!(host::take().len(), 2, "both spawns were tried");
        // init itself refusing never reaches started.
        assert_eq!(init(&mut fresh, b""), 2);
        assert_eq!(host::take(), vec![]);
    }

    #[test]
    fn tagged_calls_map_results_to_tags_and_refusals() {
        host::reset();
        let mut state: Option<Sup> = None;
        assert_eq!(init(&mut state, b"\x00"), 0);
        host::fake(|f| f.answers.extend([41, -2, -3, -1, -9]));
        assert_eq!(handle(&mut state, b"ask", b"sup:w0"), 0);
        assert_eq!(state.as_ref().unwrap().asking, Some(Tag(41)));
        // Refused: the guest replies the code and runs on.
        assert_eq!(handle(&mut state, b"ask", b"sup:w0"), 0);
        assert_eq!(handle(&mut state, b"tick", b""), 5, "-3 refused the timer");
        assert_eq!(handle(&mut state, b"stop", b""), 6, "-1 refused the stop");
        assert_eq!(handle(&mut state, b"ask", b"sup:w1"), 0);
        assert_eq!(
            host::take(),
            vec![
                HostCall::Ask {
                    to: "sup:w0".into(),
                    method: "get".into(),
                    body: vec![],
                    timeout_ms: 250
                },
                HostCall::Ask {
                    to: "sup:w0".into(),
                    method: "get".into(),
                    body: vec![],
                    timeout_ms: 250
                },
                HostCall::Reply((-2i64).to_le_bytes().to_vec()),
                HostCall::Timer {
                    delay_ms: 30,
                    method: "tock".into(),
                    body: b"t".to_vec()
                },
                HostCall::Stop {
                    point: "sup:w0".into()
                },
                HostCall::Ask {
                    to: "sup:w1".into(),
                    method: "get".into(),
                    body: vec![],
                    timeout_ms: 250
                },
                HostCall::Reply((-9i64).to_le_bytes().to_vec()),
            ]
        );
        // Fresh tags again once the script is used up.
        assert_eq!(handle(&mut state, b"tick", b""), 0);
        assert_eq!(
            host::take().last(),
            Some(&HostCall::Reply(1u64.to_le_bytes().to_vec()))
        );
    }

    #[test]
    fn on_reply_hands_the_guest_its_tag_and_outcome() {
        host::reset();
        let mut state: Option<Sup> = None;
        assert_eq!(on_reply(&mut state, 1, 0, b""), NOT_STARTED);
        assert_eq!(init(&mut state, b"\x01"), 0);
        host::fake(|f| f.answers.push_back(i64::MAX));
        assert_eq!(handle(&mut state, b"ask", b"sup:w0"), 0);
        // The spawn's outcome (the child's Point), then the ask's reply.
        assert_eq!(on_reply(&mut state, 1, 0, b"sup:w0"), 0);
        assert_eq!(on_reply(&mut state, i64::MAX, 0, b"42"), 0);
        // A failed ask: status nonzero, the reason as text.
        host::fake(|f| f.answers.push_back(3));
        assert_eq!(handle(&mut state, b"ask", b"sup:gone"), 0);
        assert_eq!(on_reply(&mut state, 3, 1, b"nobody at sup:gone"), 0);
        let sup = state.as_ref().unwrap();
        assert_eq!(
            sup.replies,
            vec![Ok(b"42".to_vec()), Err("nobody at sup:gone".to_string())]
        );
        assert!(sup.spawning.is_empty() && sup.asking.is_none());
        // The guest's refusal is the status; a reason that is not UTF-8
        // never reaches it.
        assert_eq!(on_reply(&mut state, 99, 0, b""), 9);
        assert_eq!(on_reply(&mut state, 99, 1, &[0xff]), BAD_TEXT);
        assert_eq!(
            on_reply(&mut state, 99, 0, &[0xff]),
            9,
            "a reply body is bytes, not text"
        );
    }

    #[test]
    fn crash_notices_carry_the_code_and_a_supervisor_respawns() {
        host::reset();
        let mut state: Option<Sup> = None;
        assert_eq!(
            on_crash_notice(&mut state, b"sup:w0", 1, b"", 0, true),
            NOT_STARTED
        );
        assert_eq!(init(&mut state, b"\x01"), 0);
        host::take();
        assert_eq!(
            on_crash_notice(&mut state, b"sup:w0", 42, b"guest crash 42: x", 0, true),
            0
        );
        assert_eq!(
            on_crash_notice(&mut state, b"sup:w0", -1, b"trap", 3, false),
            0
        );
        assert_eq!(on_crash_notice(&mut state, b"sup:w0", 0, b"", -5, true), 0);
        assert_eq!(
            on_crash_notice(&mut state, &[0xc3], 1, b"", 0, true),
            BAD_TEXT
        );
        assert_eq!(
            on_crash_notice(&mut state, b"sup:w0", 1, &[0xc3], 0, true),
            BAD_TEXT
        );
        let sup = state.as_ref().unwrap();
        assert_eq!(
            sup.crashes,
            vec![
                ("sup:w0".to_string(), Some(42), 0, true),
                ("sup:w0".to_string(), None, 3, false),
                ("sup:w0".to_string(), Some(0), 0, true),
            ]
        );
        assert_eq!(
            host::take(),
            vec![spawn_call("w0", b""), spawn_call("w0", b"")],
            "respawned when given up on, not when the Star restarts it"
        );
    }

    #[test]
    fn me_and_parent_retry_a_buffer_too_small() {
        host::reset();
        let mut state: Option<Sup> = None;
        assert_eq!(init(&mut state, b"\x00"), 0);
        host::fake(|f| {
            f.me = "app:sup".into();
            f.restarts = 4;
        });
        assert_eq!(handle(&mut state, b"who", b""), 0);
        assert_eq!(
            host::take(),
            vec![
                HostCall::SelfPoint { cap: TEXT_BUFFER },
                HostCall::Parent { cap: TEXT_BUFFER },
                HostCall::Restarts,
                HostCall::Reply(b"app:sup|None|4".to_vec()),
            ]
        );

        // A Point longer than the first buffer is read again, whole.
        let long = format!("app:{}", "x".repeat(TEXT_BUFFER * 2));
        let exact = "p".repeat(TEXT_BUFFER);
        host::fake(|f| {
            f.me = long.clone();
            f.parent = Some(exact.clone());
        });
        assert_eq!(handle(&mut state, b"who", b""), 0);
        assert_eq!(
            host::take(),
            vec![
                HostCall::SelfPoint { cap: TEXT_BUFFER },
                HostCall::SelfPoint { cap: long.len() },
                HostCall::Parent { cap: TEXT_BUFFER },
                HostCall::Restarts,
                HostCall::Reply(format!("{long}|Some({exact:?})|4").into_bytes()),
            ],
            "exactly the first buffer's size fits at once"
        );
    }

    #[test]
    fn a_crash_never_returns_and_is_recorded() {
        host::reset();
        let mut state: Option<Sup> = None;
        assert_eq!(init(&mut state, b"\x00"), 0);
        let crashed = host::catch_crash(|| handle(&mut state, b"die", b""));
        assert_eq!(
            crashed,
            Err(host::Crashed {
                code: 7,
                message: "asked to die".into()
            })
        );
        assert_eq!(
            host::take(),
            vec![HostCall::Crash {
                code: 7,
                message: "asked to die".into()
            }]
        );
        // Other panics are not crashes: they go on unwinding.
        let other = std::panic::catch_unwind(|| host::catch_crash(|| panic!("a bug")));
        assert!(other.is_err());
    }
}
