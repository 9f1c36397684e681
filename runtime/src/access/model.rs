//! The property test of the rules: random rule sets and random visits,
//! judged by the Machine's check ([`super::Access::allows`], fast paths,
//! index and all) and by a small reference model written from the rules'
//! documentation, which must agree on every decision.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;

/// The model's Point: its segments (the root has none).
type Segs = Vec<&'static str>;

fn segs(p: &Point) -> Vec<String> {
    p.segments().map(str::to_string).collect()
}

/// `a` is `b` or above it.
fn at_or_above(a: &Point, b: &Point) -> bool {
    let (a, b) = (segs(a), segs(b));
    a.len() <= b.len() && a[..] == b[..a.len()]
}

/// The reference: a list of grants, a list of group members, the rules
/// read straight from their documentation.
#[derive(Default, Debug)]
struct Model {
    grants: Vec<(Scope, Visitors, Privileges)>,
    members: Vec<(Arc<str>, Visitors)>,
}

impl Model {
    fn apply(&mut self, change: &Change) {
        match change {
            Change::Grant(g) => self.grants.push((g.on.clone(), g.to.clone(), g.privileges)),
            Change::Revoke(g) => {
                for (on, to, p) in &mut self.grants {
                    if *on == g.on && *to == g.to {
                        *p = p.without(g.privileges);
                    }
                }
            }
            Change::Join { group, member } => self.members.push((group.clone(), member.clone())),
            Change::Leave { group, member } => {
                self.members.retain(|(g, m)| !(g == group && m == member))
            }
        }
    }

    fn matches(&self, pattern: &Visitors, visit: &Visit<'_>, depth: u8) -> bool {
        match pattern {
            Visitors::Anyone => true,
            Visitors::Point(q) => visit.who == Who::Particle(q),
            Visitors::Subtree(q) => matches!(visit.who, Who::Particle(p) if at_or_above(q, p)),
            Visitors::Kind(k) => matches!(visit.who, Who::Particle(_)) && visit.kind == Some(k),
            Visitors::Group(g) => {
                depth == 0
                    && self
                        .members
                        .iter()
                        .any(|(name, m)| name == g && self.matches(m, visit, 1))
            }
            Visitors::Machine(m) => visit.who == Who::Machine(m) || visit.via == Some(&**m),
            Visitors::User(u) => visit.who == Who::User(u),
        }
    }

    fn allows(
        &self,
        enforced: bool,
        superusers: &[&str],
        visit: &Visit<'_>,
        target: &Point,
        want: Privilege,
    ) -> bool {
        // Superusers: the Machine (not through a peer), named users.
        match visit.who {
            Who::Particle(p) if p.is_root() && visit.via.is_none() => return true,
            Who::User(u) if superusers.contains(&u) => return true,
            _ => {}
        }
        let open_privileges = [
            Privilege::Send,
            Privilege::Ask,
            Privilege::Spawn,
            Privilege::Link,
            Privilege::Read,
        ];
        if !enforced && !visit.confined && open_privileges.contains(&want) {
            return true;
        }
        if let Who::Particle(p) = visit.who {
            if !p.is_root() {
                // Ownership of the subtree.
                if at_or_above(p, target) {
                    return true;
                }
                // Stop its own line; send and ask its parent.
                if want == Privilege::Stop && !target.is_root() && at_or_above(target, p) {
                    return true;
                }
                let mut parent = segs(p);
                parent.pop();
                if matches!(want, Privilege::Send | Privilege::Ask)
                    && (parent == segs(target)
                        || visit.grants.iter().any(|g| at_or_above(g, target)))
                {
                    return true;
                }
            }
        }
        self.grants.iter().any(|(on, to, p)| {
            p.has(want)
                && (if on.subtree {
                    at_or_above(&on.point, target)
                } else {
                    on.point == *target
                })
                && self.matches(to, visit, 0)
        })
    }
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const WORDS: [&str; 2] = ["x", "y"];

fn point() -> impl Strategy<Value = Point> {
    prop::collection::vec(prop::sample::select(&NAMES[..]), 0..4).prop_map(|s: Segs| {
        if s.is_empty() {
            Point::root()
        } else {
            Point::parse(&s.join(":")).unwrap()
        }
    })
}

fn word() -> impl Strategy<Value = Arc<str>> {
    prop::sample::select(&WORDS[..]).prop_map(Arc::from)
}

fn member() -> impl Strategy<Value = Visitors> {
    prop_oneof![
        Just(Visitors::Anyone),
        point().prop_map(Visitors::Point),
        point().prop_map(Visitors::Subtree),
        word().prop_map(|w| Visitors::Kind(Kind::new(&*w))),
        word().prop_map(Visitors::Machine),
        word().prop_map(Visitors::User),
    ]
}

fn visitors() -> impl Strategy<Value = Visitors> {
    prop_oneof![member(), member(), word().prop_map(Visitors::Group)]
}

fn privileges() -> impl Strategy<Value = Privileges> {
    (1u8..=0x7f).prop_map(Privileges::from_bits)
}

fn grant() -> impl Strategy<Value = Grant> {
    (privileges(), point(), any::<bool>(), visitors()).prop_map(|(p, at, subtree, to)| Grant {
        on: Scope { point: at, subtree },
        to,
        privileges: p,
    })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => grant().prop_map(Change::Grant),
        1 => grant().prop_map(Change::Revoke),
        1 => (word(), member()).prop_map(|(group, member)| Change::Join { group, member }),
        1 => (word(), member()).prop_map(|(group, member)| Change::Leave { group, member }),
    ]
}

/// A visitor, owned: who, Kind, via, confined.
#[derive(Debug, Clone)]
struct Visiting {
    who: u8,
    point: Point,
    word: Arc<str>,
    kind: Option<Kind>,
    via: Option<Arc<str>>,
    confined: bool,
    grants: Vec<Point>,
}

impl Visiting {
    fn visit(&self) -> Visit<'_> {
        let who = match self.who {
            0 => Who::Particle(&self.point),
            1 => Who::User(&self.word),
            _ => Who::Machine(&self.word),
        };
        Visit {
            who,
            kind: self.kind.as_ref(),
            // A peer's voice comes through itself.
            via: if self.who == 2 {
                Some(&self.word)
            } else {
                self.via.as_deref()
            },
            confined: self.confined,
            grants: &self.grants,
        }
    }
}

fn visiting() -> impl Strategy<Value = Visiting> {
    (
        prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        point(),
        word(),
        prop::option::of(word().prop_map(|w| Kind::new(&*w))),
        prop::option::of(word()),
        any::<bool>(),
        prop::collection::vec(point(), 0..2),
    )
        .prop_map(|(who, point, word, kind, via, confined, grants)| Visiting {
            who,
            point,
            word,
            kind,
            via,
            confined,
            grants,
        })
}

fn privilege() -> impl Strategy<Value = Privilege> {
    prop::sample::select(&Privilege::ALL[..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The Machine's check equals the reference on random rules and visits.
    #[test]
    fn the_check_equals_the_reference_model(
        changes in prop::collection::vec(change(), 0..24),
        visits in prop::collection::vec((visiting(), point(), privilege()), 1..48),
        enforced in any::<bool>(),
    ) {
        let mut rules = Rules::default();
        let mut model = Model::default();
        for c in &changes {
            rules.apply(c).unwrap();
            model.apply(c);
        }
        let policy = if enforced { AccessPolicy::Enforced } else { AccessPolicy::Open };
        let access = Access::new(policy, rules, vec![Arc::from("y")]);
        for (v, target, want) in &visits {
            let visit = v.visit();
            let got = access.allows(&visit, target, *want);
            let expected = model.allows(enforced, &["y"], &visit, target, *want);
            prop_assert_eq!(got, expected, "{:?} {} {} ({:?})", visit, want, target, changes);
        }
    }

    /// Rules rebuilt from their changes (what a joining Machine learns)
    /// decide as the originals.
    #[test]
    fn rules_rebuilt_from_their_changes_decide_the_same(
        changes in prop::collection::vec(change(), 0..24),
        visits in prop::collection::vec((visiting(), point(), privilege()), 1..24),
    ) {
        let mut rules = Rules::default();
        for c in &changes {
            rules.apply(c).unwrap();
        }
        let mut copy = Rules::default();
        for c in rules.changes() {
            copy.apply(&c).unwrap();
        }
        for (v, target, want) in &visits {
            let visit = v.visit();
            prop_assert_eq!(rules.allows(false, &visit, target, *want), copy.allows(false, &visit, target, *want));
            prop_assert_eq!(rules.allows(true, &visit, target, *want), copy.allows(true, &visit, target, *want));
        }
        prop_assert_eq!(rules.grants().collect::<Vec<_>>(), copy.grants().collect::<Vec<_>>());
    }

    /// Grants print as they parse.
    #[test]
    fn grants_print_as_they_parse(g in grant()) {
        let text = g.to_string();
        prop_assert_eq!(text.parse::<Grant>().unwrap(), g);
    }
}

#[test]
fn bad_text_is_a_typed_error() {
    assert!(matches!(
        "sned on a to b".parse::<Grant>(),
        Err(RuleError::Privilege { .. })
    ));
    assert!(matches!(
        "send on a::b to b".parse::<Grant>(),
        Err(RuleError::Scope { .. })
    ));
    assert!(matches!(
        "send on a to kind=".parse::<Grant>(),
        Err(RuleError::Name { .. })
    ));
    assert!(matches!(
        "send on a to shape=x".parse::<Grant>(),
        Err(RuleError::Visitors { .. })
    ));
    assert!(matches!(
        "send a to b".parse::<Grant>(),
        Err(RuleError::Grant { .. })
    ));
    let long = "x".repeat(256);
    assert!(matches!(
        format!("send on a to user={long}").parse::<Grant>(),
        Err(RuleError::Name { .. })
    ));
    let mut rules = Rules::default();
    let nested = Change::Join {
        group: "g".into(),
        member: Visitors::Group("h".into()),
    };
    assert!(matches!(
        rules.apply(&nested),
        Err(RuleError::GroupInGroup { .. })
    ));
}
