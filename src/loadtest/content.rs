//! Realistic-looking people and messages, shared by `loadtest` (webhook
//! bodies) and `seed` (database rows). Everything is fictional: phone numbers
//! are in the US 555 range (or prefixed so they cannot be anyone's), BSUIDs
//! carry a marker digit pattern, and the texts are typical questions a
//! prospective student sends to a school's WhatsApp number.

/// First names, deliberately international (WhatsApp's audience is).
pub const FIRST_NAMES: [&str; 32] = [
    "Ada", "Grace", "Alan", "Linus", "Amara", "Chidi", "Priya", "Arjun", "Mei", "Hiroshi", "Sofía",
    "Mateo", "Lucía", "João", "Ana", "Fatima", "Omar", "Zainab", "Ivan", "Olga", "Lars", "Ingrid",
    "Kwame", "Aisha", "Diego", "Camila", "Noah", "Emma", "Liam", "Chloé", "Yusuf", "Thandiwe",
];

/// Last names.
pub const LAST_NAMES: [&str; 29] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Okafor",
    "Adeyemi",
    "Sharma",
    "Patel",
    "Chen",
    "Tanaka",
    "García",
    "Fernández",
    "Silva",
    "Santos",
    "Haddad",
    "Khan",
    "Petrov",
    "Nilsson",
    "Mensah",
    "Diallo",
    "Rodríguez",
    "Müller",
    "Dubois",
    "Smith",
    "Nguyen",
    "Kowalski",
    "O'Brien",
    "Yılmaz",
    "Mbeki",
    "Costa",
];

/// What people write to a school: questions about courses, prices and
/// schedules, in several languages, with the odd emoji and quote (so JSON
/// escaping and multi-byte UTF-8 are exercised like real traffic does).
pub const TEXTS: [&str; 24] = [
    "Hi! Do you have evening classes?",
    "Hello, how much is the web development bootcamp?",
    "When does the next cohort start?",
    "Is the Data Science course online or in person?",
    "Can I pay in installments?",
    "I saw your ad on Instagram, can you send me more info please",
    "Do you offer scholarships for women in tech?",
    "What are the requirements to enroll?",
    "Thanks! 🙏",
    "ok",
    "Is there a certificate at the end?",
    "¿Tienen clases los sábados?",
    "Olá! Quero saber o preço do curso de Python 😊",
    "Bonjour, le cours est-il disponible en français ?",
    "I'm a complete beginner, is \"Intro to Programming\" right for me?",
    "My son is 16, can he join?",
    "Can you call me tomorrow morning?",
    "What time does the Tuesday class finish?",
    "I want to register for the UX design course",
    "Do you have a discount for students?",
    "How many hours per week should I plan for?",
    "Is the Saturday workshop free?",
    "Where is your campus? Is there parking?",
    "Please send me the syllabus 📄",
];

/// Summaries of the non-text messages `seed` mixes in, as leadhook would
/// have stored them (`[image]`, a button title, a location, …).
pub const OTHER_MESSAGES: [(&str, &str); 6] = [
    ("image", "[image]"),
    ("image", "Is this the right form?"),
    ("audio", "[audio]"),
    ("interactive", "Evening classes"),
    ("button", "Yes, call me"),
    ("location", "[location: 40.4168,-3.7038 Madrid]"),
];

/// A fixed business account and number: the "school" every message goes to.
pub const WABA_ID: &str = "102290129340398";
pub const DISPLAY_PHONE_NUMBER: &str = "15550783881";
pub const PHONE_NUMBER_ID: &str = "106540352242922";

/// The profile name of person `k` (stable: the same `k` always has the same
/// name, so repeated runs update leads instead of churning them).
pub fn name(k: u64) -> String {
    let first = FIRST_NAMES[(k % FIRST_NAMES.len() as u64) as usize];
    let last = LAST_NAMES[((k / FIRST_NAMES.len() as u64) % LAST_NAMES.len() as u64) as usize];
    format!("{first} {last}")
}

/// A WhatsApp username for person `k`: lower-case ASCII, a dot, digits.
pub fn username(k: u64) -> String {
    let first = FIRST_NAMES[(k % FIRST_NAMES.len() as u64) as usize];
    let ascii: String = first
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{ascii}.learns{}", k % 10_000)
}

/// splitmix64: a tiny, good-enough mixing function for picking senders and
/// texts deterministically (no RNG crate needed, and reproducible).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A deterministic pseudo-random stream (splitmix64 over a counter).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_varied() {
        assert_eq!(name(0), name(0));
        let distinct: std::collections::HashSet<String> = (0..1000).map(name).collect();
        assert!(distinct.len() > 500, "{}", distinct.len());
        assert!(username(5)
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.'));
    }

    #[test]
    fn rng_is_reproducible_and_spread() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::new(1);
        let mean = (0..10_000).map(|_| r.unit()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
