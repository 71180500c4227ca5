//! The password policy: a minimum length, a maximum (hashing cost), and no common password.
//! Hashing itself (argon2id) is done by the gateway, off the async runtime.

use super::AccountError;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password accepted (bounds the hashing work one request can cause).
pub const MAX_PASSWORD_LEN: usize = 256;

/// The most common passwords and their stems, from the public breach top lists. A password is
/// refused when it, or it without trailing digits and punctuation (`password2024!`), is here.
const COMMON: &[&str] = &[
    "123456",
    "password",
    "12345678",
    "qwerty",
    "123456789",
    "12345",
    "1234",
    "111111",
    "1234567",
    "dragon",
    "123123",
    "baseball",
    "abc123",
    "football",
    "monkey",
    "letmein",
    "shadow",
    "master",
    "666666",
    "qwertyuiop",
    "123321",
    "mustang",
    "1234567890",
    "michael",
    "654321",
    "superman",
    "1qaz2wsx",
    "7777777",
    "121212",
    "000000",
    "qazwsx",
    "123qwe",
    "killer",
    "trustno1",
    "jordan",
    "jennifer",
    "zxcvbnm",
    "asdfgh",
    "hunter",
    "buster",
    "soccer",
    "harley",
    "batman",
    "andrew",
    "tigger",
    "sunshine",
    "iloveyou",
    "2000",
    "charlie",
    "robert",
    "thomas",
    "hockey",
    "ranger",
    "daniel",
    "starwars",
    "klaster",
    "112233",
    "george",
    "computer",
    "michelle",
    "jessica",
    "pepper",
    "1111",
    "zxcvbn",
    "555555",
    "11111111",
    "131313",
    "freedom",
    "777777",
    "pass",
    "maggie",
    "159753",
    "aaaaaa",
    "ginger",
    "princess",
    "joshua",
    "cheese",
    "amanda",
    "summer",
    "love",
    "ashley",
    "nicole",
    "chelsea",
    "biteme",
    "matthew",
    "access",
    "yankees",
    "987654321",
    "dallas",
    "austin",
    "thunder",
    "taylor",
    "matrix",
    "mobilemail",
    "mom",
    "monitor",
    "monitoring",
    "montana",
    "moon",
    "moscow",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "admin",
    "administrator",
    "welcome",
    "welcome1",
    "login",
    "abc",
    "qwerty123",
    "qwertyuiop123",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1q2w3e",
    "zaq12wsx",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "asdfghjkl",
    "asdf",
    "asdfasdf",
    "changeme",
    "secret",
    "default",
    "guest",
    "root",
    "test",
    "tester",
    "testing",
    "demo",
    "creditgate",
    "anthropic",
    "claude",
    "hello",
    "helloworld",
    "whatever",
    "qwe123",
    "lovely",
    "flower",
    "hottie",
    "loveme",
    "zaq1zaq1",
    "password1",
    "password12",
    "password123",
    "passwordpassword",
    "iloveyou1",
    "princess1",
    "football1",
    "baseball1",
    "superman1",
    "letmein1",
    "starwars1",
    "dragon1",
    "monkey1",
    "sunshine1",
    "master1",
    "abcdef",
    "abcdefg",
    "abcdefgh",
    "abcd1234",
    "abcdefghij",
    "qwertz",
    "azerty",
    "azertyuiop",
    "000000000",
    "0000000000",
    "1111111111",
    "123123123",
    "1234512345",
    "123456789a",
    "12345678910",
    "1234567891",
    "0987654321",
    "987654321a",
    "111222333",
    "147258369",
    "159357",
    "741852963",
    "789456123",
    "1231231234",
    "samsung",
    "apple",
    "google",
    "microsoft",
    "facebook",
    "linkedin",
    "twitter",
    "instagram",
    "youtube",
    "football123",
    "chocolate",
    "butterfly",
    "liverpool",
    "arsenal",
    "barcelona",
    "pokemon",
    "naruto",
    "minecraft",
    "fortnite",
    "blink182",
    "metallica",
    "spiderman",
    "mercedes",
    "ferrari",
    "porsche",
    "corvette",
    "internet",
    "service",
    "security",
    "summer2024",
    "winter",
    "spring",
    "autumn",
    "january",
    "december",
    "letmeinnow",
    "trustnoone",
];

/// Checks a new password against the policy; `email` is the account's, which the password may
/// not contain.
pub fn check_password(password: &str, email: &str) -> Result<(), AccountError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(AccountError::Invalid(format!(
            "password: must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AccountError::Invalid(format!(
            "password: must be at most {MAX_PASSWORD_LEN} bytes"
        )));
    }
    let lower = password.to_lowercase();
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    let first = lower.chars().next().unwrap_or(' ');
    let local = email.split('@').next().unwrap_or("").to_lowercase();
    if COMMON.contains(&lower.as_str())
        || COMMON.contains(&stem)
        || lower.chars().all(|c| c == first)
        || (local.len() >= 3 && lower.contains(&local))
    {
        return Err(AccountError::Invalid(
            "password: too common or too easy to guess; choose another".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_short_and_personal_passwords_are_refused() {
        for bad in [
            "short",
            "password123",
            "Password2024!",
            "qwertyuiop",
            "aaaaaaaaaaaa",
            "1234567890",
            "ada.lovelace-rocks",
            &"x".repeat(MAX_PASSWORD_LEN + 1),
        ] {
            assert!(
                check_password(bad, "ada.lovelace@example.com").is_err(),
                "{bad:?}"
            );
        }
        assert!(check_password("correct horse battery", "ada@example.com").is_ok());
        assert!(check_password("Tr0ub4dor&3-long", "ada@example.com").is_ok());
    }
}
