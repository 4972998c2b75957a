//! Random application names, as Deis's `generate_app_name`.

use rand::seq::IndexedRandom;

/// Adjectives for generated names: lowercase ASCII letters only.
const ADJECTIVES: &[&str] = &[
    "amber",
    "ancient",
    "autumn",
    "bold",
    "brave",
    "breezy",
    "bright",
    "calm",
    "clever",
    "cool",
    "cosmic",
    "crimson",
    "crisp",
    "dapper",
    "daring",
    "dusty",
    "eager",
    "early",
    "electric",
    "emerald",
    "fancy",
    "fluffy",
    "frosty",
    "gentle",
    "giant",
    "golden",
    "graceful",
    "happy",
    "hidden",
    "humble",
    "icy",
    "jolly",
    "kind",
    "lively",
    "lucky",
    "mellow",
    "misty",
    "modest",
    "nimble",
    "noble",
    "odd",
    "orange",
    "patient",
    "plucky",
    "polished",
    "proud",
    "quiet",
    "rapid",
    "rustic",
    "scarlet",
    "shiny",
    "silent",
    "silver",
    "snowy",
    "sunny",
    "swift",
    "tidy",
    "velvet",
    "vivid",
    "wandering",
    "wise",
    "witty",
    "young",
    "zesty",
];

/// Nouns for generated names: lowercase ASCII letters only.
const NOUNS: &[&str] = &[
    "anchor", "badger", "beacon", "bison", "blossom", "boulder", "breeze", "brook", "canyon", "cedar",
    "comet", "coral", "crane", "dolphin", "dune", "eagle", "ember", "falcon", "fern", "fjord", "forest",
    "fox", "galaxy", "glacier", "harbor", "hawk", "heron", "island", "jaguar", "koala", "lagoon", "lantern",
    "lemur", "lynx", "maple", "meadow", "meteor", "moose", "nebula", "oasis", "orchid", "otter", "owl",
    "panda", "pebble", "pine", "planet", "prairie", "quartz", "raven", "reef", "river", "rocket", "sparrow",
    "spruce", "summit", "tiger", "tundra", "valley", "walrus", "willow", "yak", "zebra",
];

/// A random `<adjective>-<noun>` name that always passes [`crate::validate::app_id`].
///
/// The caller still has to check it is not taken (Deis retries until unique).
pub fn generate_app_name() -> String {
    let mut rng = rand::rng();
    let adjective = ADJECTIVES.choose(&mut rng).copied().unwrap_or("brave");
    let noun = NOUNS.choose(&mut rng).copied().unwrap_or("otter");
    format!("{adjective}-{noun}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate;
    use std::collections::HashSet;

    #[test]
    fn word_lists_are_clean() {
        for w in ADJECTIVES.iter().chain(NOUNS) {
            assert!(!w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
        }
        assert!(ADJECTIVES.len() >= 60 && NOUNS.len() >= 60);
        let unique: HashSet<_> = ADJECTIVES.iter().collect();
        assert_eq!(unique.len(), ADJECTIVES.len(), "duplicate adjective");
        let unique: HashSet<_> = NOUNS.iter().collect();
        assert_eq!(unique.len(), NOUNS.len(), "duplicate noun");
    }

    #[test]
    fn every_combination_is_a_valid_app_id() {
        for a in ADJECTIVES {
            for n in NOUNS {
                let name = format!("{a}-{n}");
                assert!(validate::app_id(&name, &[]).is_ok(), "{name}");
            }
        }
    }

    #[test]
    fn generated_names_vary_and_validate() {
        let names: HashSet<String> = (0..200).map(|_| generate_app_name()).collect();
        assert!(names.len() > 50, "only {} distinct names", names.len());
        for n in &names {
            assert!(validate::app_id(n, &[]).is_ok(), "{n}");
            assert_eq!(n.matches('-').count(), 1);
        }
    }
}
