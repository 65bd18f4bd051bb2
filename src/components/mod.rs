//! The page's building blocks; each renders the same markup on the server and in the browser.

pub(crate) mod connection_status;
pub(crate) mod jobs_panel;
pub(crate) mod live_clock;
pub(crate) mod reset_notice;

/// The stylesheet's text colours against WCAG 2's contrast formula, from `style/main.css` itself:
/// the ratios its comment states are the true ones, each passes AA, and no `color:` escapes them.
#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    const STYLESHEET: &str = include_str!("../../style/main.css");
    /// WCAG 2 AA for text of normal size.
    const AA: f64 = 4.5;

    /// WCAG 2's relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let channel = |at: usize| {
            let value = f64::from(u8::from_str_radix(&hex[at..at + 2], 16).expect("hex digits")) / 255.0;
            match value <= 0.04045 {
                true => value / 12.92,
                false => ((value + 0.055) / 1.055).powf(2.4),
            }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    }

    fn contrast(one: &str, other: &str) -> f64 {
        let (one, other) = (luminance(one), luminance(other));
        (one.max(other) + 0.05) / (one.min(other) + 0.05)
    }

    /// The custom properties that hold a colour: `--ink` → `#1d2430`.
    fn colours() -> HashMap<&'static str, &'static str> {
        STYLESHEET
            .lines()
            .filter_map(|line| {
                let (name, value) = line.trim().strip_suffix(';')?.split_once(": ")?;
                (name.starts_with("--") && value.starts_with('#') && value.len() == 7)
                    .then_some((name, value))
            })
            .collect()
    }

    /// The comment's `contrast: --fg on --bg R:1 [on --bg R:1]…` lines, as (fg, bg, stated ratio).
    fn stated() -> Vec<(&'static str, &'static str, &'static str)> {
        let mut pairs = vec![];
        for line in STYLESHEET.lines().filter_map(|line| line.trim().strip_prefix("contrast: ")) {
            let mut words = line.split_whitespace();
            let foreground = words.next().expect("a text colour");
            while let Some(on) = words.next() {
                assert_eq!(on, "on", "in {line:?}");
                let background = words.next().expect("a background");
                let ratio = words.next().and_then(|ratio| ratio.strip_suffix(":1")).expect("a ratio R:1");
                pairs.push((foreground, background, ratio));
            }
        }
        pairs
    }

    /// The value of every `color:` declaration, comments left out.
    fn text_colours() -> Vec<&'static str> {
        let mut declarations = vec![];
        let mut rest = STYLESHEET;
        while let Some((code, after)) = rest.split_once("/*") {
            declarations
                .extend(code.split(['{', '}', ';']).filter_map(|piece| piece.trim().strip_prefix("color:")));
            rest = after.split_once("*/").expect("a closed comment").1;
        }
        declarations
            .extend(rest.split(['{', '}', ';']).filter_map(|piece| piece.trim().strip_prefix("color:")));
        declarations.into_iter().map(str::trim).collect()
    }

    #[test]
    fn every_text_colour_passes_wcag_aa_on_its_backgrounds() {
        let colours = colours();
        let pairs = stated();
        for (foreground, background, ratio) in &pairs {
            let measured = contrast(colours[foreground], colours[background]);
            assert_eq!(
                format!("{measured:.2}"),
                *ratio,
                "{foreground} on {background}: the comment says {ratio}:1"
            );
            assert!(measured >= AA, "{foreground} on {background} is {measured:.2}:1, under AA's {AA}:1");
        }
        for status in ["--live", "--warn", "--fail"] {
            for background in ["--paper", "--card"] {
                assert!(
                    pairs.iter().any(|(fg, bg, _)| (*fg, *bg) == (status, background)),
                    "the contrast of {status} on {background} is not stated"
                );
            }
        }
        for colour in text_colours() {
            let name = colour.strip_prefix("var(").and_then(|name| name.strip_suffix(')'));
            assert!(
                name.is_some_and(|name| pairs.iter().any(|(fg, _, _)| *fg == name)),
                "color: {colour} is not one of the text colours whose contrast is stated"
            );
        }
    }
}
