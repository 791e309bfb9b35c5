//! How an error is shown to a person: one line, the error and then each cause, a cause left
//! out where the text before already quotes it (library errors often repeat their source in
//! their own message).

use std::error::Error;

/// `e` and its causes on one line.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text = format!("{text}: {c_text}");
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;
    use std::io;

    #[test]
    fn causes_are_appended_unless_already_quoted() {
        #[derive(Debug, thiserror::Error)]
        #[error("{what}")]
        struct Outer {
            what: &'static str,
            #[source]
            source: io::Error,
        }
        let quoting = Outer {
            what: "reading x: disk on fire",
            source: io::Error::other("disk on fire"),
        };
        assert_eq!(error_chain(&quoting), "reading x: disk on fire");
        let terse = Outer {
            what: "reading x",
            source: io::Error::other("disk on fire"),
        };
        assert_eq!(error_chain(&terse), "reading x: disk on fire");
    }
}
