//! Attacker text made inert for each place trailhouse writes it.
//!
//! CloudTrail values are written by whoever calls AWS: user agents, request parameters, role
//! session names, even regions. A value must read as itself wherever it lands, never act: no
//! escape sequence reaching a terminal, no link, image or HTML in a Markdown ticket, no formula
//! in a spreadsheet, no markup in the HTML report. JSON, NDJSON and Parquet carry values exactly
//! (their encodings already escape what needs it).

use std::borrow::Cow;

/// Characters that act on a terminal or reorder the text around them: C0 and C1 controls, DEL,
/// and the Unicode bidirectional embeddings, overrides and isolates.
fn acts(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text for a terminal: every control, DEL and bidirectional character shown as its escape
/// (`\u{1b}`, `\n`), so nothing the text holds is executed by the terminal.
pub fn terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acts(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text for a GitHub-flavoured Markdown document, in a table cell or a line of prose: Markdown
/// and HTML punctuation escaped with backslashes (no link, image, emphasis, code or tag can
/// form, and a pipe does not end the cell), URLs defanged against autolinking (`http:\/\/`,
/// `www\.`), and controls as in [`terminal`], so the value renders as the text it is.
pub fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '|' | '!' | '~' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c if acts(c) => out.extend(c.escape_debug()),
            c => out.push(c),
        }
    }
    out.replace("://", ":\\/\\/").replace("www.", "www\\.")
}

/// A CSV cell a spreadsheet may open: a string starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return is a formula to Excel, LibreOffice and Google Sheets, so it gets a leading
/// `'` (OWASP's advice); other strings are written as they are.
pub fn spreadsheet(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Text for HTML element content and attribute values.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "\u{1b}[31mred\u{7} <img src=x onerror=alert(1)> ![x](http://evil.example/p.png) [a](b) www.evil.example `c` | \u{202E}fdp.exe\r\nnext";

    #[test]
    fn a_terminal_gets_no_control_or_reordering_character() {
        let t = terminal(HOSTILE);
        assert!(!t.chars().any(acts), "{t}");
        assert!(t.starts_with("\\u{1b}[31mred\\u{7} <img"), "{t}");
        assert!(t.contains("\\u{202e}fdp.exe\\r\\nnext"), "{t}");
        assert!(matches!(terminal("plain ünïcode"), Cow::Borrowed(_)));
    }

    #[test]
    fn markdown_cannot_form_links_images_tags_or_cells() {
        let m = markdown(HOSTILE);
        assert!(!m.chars().any(acts), "{m}");
        // What Markdown sees as active once every backslash-escaped character is taken out.
        let mut active = String::new();
        let mut chars = m.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                chars.next();
            } else {
                active.push(c);
            }
        }
        for formed in ["![", "<img", "](", "http://", "www.", "`c`", " | "] {
            assert!(!active.contains(formed), "`{formed}` survives in {m}");
        }
        assert!(
            m.contains("\\!\\[x\\](http:\\/\\/evil.example/p.png)"),
            "{m}"
        );
        assert!(m.contains("\\<img src=x onerror=alert(1)\\>"), "{m}");
        assert_eq!(
            markdown("arn:aws:iam::1:user/a-b.c"),
            "arn:aws:iam::1:user/a-b.c"
        );
    }

    #[test]
    fn spreadsheet_formulas_are_neutralised() {
        for formula in [
            "=HYPERLINK(\"x\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(spreadsheet(formula), format!("'{formula}"));
        }
        for plain in ["arn:aws:iam::1:user/a", "1-2", "a=b", ""] {
            assert_eq!(spreadsheet(plain), plain);
        }
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
