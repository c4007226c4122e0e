//! Free-text normalisation (field `text`): lower-case (Unicode), split on every character that is
//! not alphanumeric (Unicode), drop tokens shorter than 3 characters, tokens made only of digits
//! (doses and counts, which are better searched as values), and English stop words. No stemming:
//! clinical vocabulary stems badly (`diabetes` / `diabetic`, `metastases`), and a query must
//! derive the very same token, so the query side calls [`tokens`] on the researcher's words.

/// English stop words, plus a few words that carry no meaning in clinical text.
const STOP_WORDS: &[&str] = &[
    "about", "above", "after", "again", "against", "all", "also", "and", "any", "are", "because", "been", "before",
    "being", "below", "between", "both", "but", "can", "did", "does", "doing", "down", "during", "each", "few", "for",
    "from", "further", "had", "has", "have", "having", "her", "here", "hers", "herself", "him", "himself", "his",
    "how", "into", "its", "itself", "just", "more", "most", "not", "now", "off", "once", "only", "other", "our",
    "ours", "out", "over", "own", "per", "same", "she", "should", "some", "such", "than", "that", "the", "their",
    "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "too", "under", "until", "upon",
    "very", "was", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "within",
    "without", "would", "you", "your",
];

/// The normalised tokens of `text`, in order of first appearance, without repeats.
///
/// ```
/// use index::keywords::text::tokens;
/// assert_eq!(tokens("Type 2 diabetes mellitus, without complications"), ["type", "diabetes", "mellitus", "complications"]);
/// assert_eq!(tokens("Metformin hydrochloride 500 MG Oral Tablet"), ["metformin", "hydrochloride", "oral", "tablet"]);
/// ```
pub fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split(|c: char| !c.is_alphanumeric()) {
        let token = raw.to_lowercase();
        if token.chars().count() < 3
            || token.chars().all(|c| c.is_numeric())
            || STOP_WORDS.binary_search(&token.as_str()).is_ok()
            || out.contains(&token)
        {
            continue;
        }
        out.push(token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn unicode_text() {
        assert_eq!(tokens("Hémoglobine glyquée (HbA1c) — ÉLEVÉE"), ["hémoglobine", "glyquée", "hba1c", "élevée"]);
        assert_eq!(tokens("Σακχαρώδης διαβήτης"), ["σακχαρώδης", "διαβήτης"]);
        assert_eq!(tokens("糖尿病"), ["糖尿病"]);
        assert_eq!(tokens("BP 120/80 mmHg"), ["mmhg"]);
        assert_eq!(tokens("the patient and the PATIENT"), ["patient"]);
        assert!(tokens("").is_empty());
        assert!(tokens(" ,;. ").is_empty());
    }
}
