"""English -> Spanish Bible verses: the World English Bible (SWORD module engWEB2015eb) into the
Reina-Valera 1909 (spaRV1909eb), both public domain, read offline from the SWORD modules of Debian's
sword-text-web and sword-text-sparv packages with `mod2imp` (libsword-utils).

Verses. `mod2imp` writes each entry as a `$$$Book C:V` line and its OSIS text. Kept: verses (C and
V >= 1) of the 66 books both modules hold (the WEB's deuterocanon has no Spanish side). Dropped
from a verse: notes (<note>, with their references and readings), speaker labels of the Song of
Songs (<speaker>), titles that are not scripture (<title> without canonical="true"; a psalm's
canonical superscription stays, as the Spanish verse carries it as text), and whatever follows the
chapter's end tag (the WEB's glossary follows Revelation 22:21). The other tags are removed: a tag
between two word characters becomes a space (`God<note>...</note><w>created` -> "God created";
the Spanish text has 500 places like `ejército</w><transChange>se llamaba`), except a Spanish
enclitic pronoun the translators added to a verb (`sáca</w><transChange>lo</transChange>` ->
"sácalo"); block tags (lines, paragraphs) become a space unless next to closing or after opening
punctuation. Then XML entities are unescaped and whitespace collapsed.

Alignment by reference, except where the two modules break verses differently. The Reina-Valera
follows the Hebrew chapter breaks in places (Numbers 13:1 is the English 12:16, so its 12:16 is
empty and all of its chapter 13 is one verse off), merges verses (2 Samuel 20:25-26) or breaks them
elsewhere (1 Kings 22:43-53, 1 Chronicles 21:15-30), and ends Paul's letters with a subscription
("...fué escrita de Roma"); the WEB omits some verses (Acts 8:37) and has its own (3 John 1:15,
Revelation 12:18). So a chapter is dropped where either module leaves a verse of it empty or lacks
it (and the next chapter too when that verse is the chapter's last), or where a length-based
alignment of its verses (Gale and Church, 1993; `breaks_verses_differently`) matches two verses of
one side with one of the other. Of the 31,102 verses both modules hold, 41 chapters (1,135 verses)
go, 3 John whole; 29,967 pairs remain, in 1,148 chapters of 65 books.

Splits by book, so that no book is in two splits: the Bible repeats itself across books (Kings and
Chronicles, the Gospels, 2 Peter and Jude, Ephesians and Colossians, Ezra 2 and Nehemiah 7, Psalm 18
and 2 Samuel 22), and a split by verse would score a model on text it trained on. Each such group
stays on one side: Samuel, Kings, Chronicles, Psalms, Isaiah, Jeremiah and the Gospels train.
- test (2,992 verses of 29,967, 10.0%): Ruth, Esther, Proverbs, Daniel; Romans, 1 Corinthians,
  Hebrews, Revelation.
- validation (2,704 verses, 10.0% of the rest): Ecclesiastes, Song of Solomon, Lamentations,
  Ezekiel; Galatians, Ephesians, Philippians, Colossians, 1 and 2 Thessalonians, James, 1 and
  2 Peter, Jude.
- train (24,271 verses): the other 43 books.
A held-out verse whose English occurs word for word in a training verse is left out (formulas such
as "Yahweh's word came to me, saying,"): 30 of validation, 1 of test, leaving 2,674 and 2,991.
--eval-split picks validation or test; training never holds either (--val-fraction does not apply).
--data-files reads local pair files instead, as every seq2seq task does.

Its metrics hold, as every seq2seq task's do (tasks.text.Seq2SeqTask), `floor_copy_bleu` and
`floor_copy_chrf`: the scores of copying each English source as its own translation, over the same
evaluation pairs (names and numbers overlap), a floor any trained model must clear.
"""

from __future__ import annotations

import functools
import html
import math
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from bench.core.errors import DataError
from tasks.base import register_task
from tasks.text import Seq2SeqTask

SOURCE_MODULE = "engWEB2015eb"  # World English Bible, 2015 edition with deuterocanon (NRSVA versification)
TARGET_MODULE = "spaRV1909eb"  # Reina-Valera 1909 (KJV versification)
INSTALL = "apt-get install libsword-utils sword-text-web sword-text-sparv"

# Book names as mod2imp writes them (SWORD's English names).
TEST_BOOKS = ("Ruth", "Esther", "Proverbs", "Daniel", "Romans", "I Corinthians", "Hebrews", "Revelation of John")
VALIDATION_BOOKS = (
    "Ecclesiastes", "Song of Solomon", "Lamentations", "Ezekiel", "Galatians", "Ephesians", "Philippians",
    "Colossians", "I Thessalonians", "II Thessalonians", "James", "I Peter", "II Peter", "Jude",
)

# ---------------------------------------------------------------- OSIS to text

BLOCK, JOIN = "\x00", "\x01"  # placeholders of a removed block tag and a removed inline tag
INLINE_TAGS = "w|transChange|q|seg|name|hi|foreign|divineName|rdg|catchWord|reference|index"
DROPPED = re.compile(
    r"<note\b[^>]*?(?<!/)>.*?</note>"  # notes, with the references and readings inside them
    r"|<speaker\b[^>]*?(?<!/)>.*?</speaker>"  # "Beloved", "Lover" in the Song of Songs
    r"|<title\b(?![^>]*canonical=\"true\")[^>]*?(?<!/)>.*?</title>",  # headings that are not scripture
    re.S,
)
INLINE = re.compile(rf"</?(?:{INLINE_TAGS})\b[^>]*>")
TAG = re.compile(r"<[^>]*>")
# Pronouns the Reina-Valera's translators added to a verb as a suffix (<transChange>): "sáca" + "lo".
ENCLITIC = re.compile(r"(?<=\w)(</w>)?<transChange\b[^>]*>((?:me|te|se|nos|os|lo|la|los|las|le|les)+)</transChange>")
VERB_ENDING = re.compile(r"(?:[rd]|ndo|[áéíóú]\w*)$")  # infinitive, imperative, gerund, or a stress mark
SHORT_VERBS = {"di", "da", "haz", "he", "vi"}  # "dilo", "dalo", "hazlo", "helo", "vilo"
NAMES = {"Jehová", "Josué"}  # end in a stressed vowel, take no suffix


def attach_enclitic(match: re.Match) -> str:
    """`sáca</w><transChange>lo</transChange>` -> `sácalo</w>`, when the word before looks like a verb."""
    word = re.search(r"\w+$", match.string[max(0, match.start() - 40) : match.start()])[0]
    verb = word.lower() in SHORT_VERBS or (VERB_ENDING.search(word) is not None and word not in NAMES)
    return f"{match[2]}{match[1] or ''}" if verb else match[0]


def verse_text(osis: str) -> str:
    """Plain text of one verse's OSIS markup (see the module docstring)."""
    end = osis.find("<chapter eID")
    if end >= 0:
        osis = osis[:end]
    if "<transChange" in osis:
        osis = ENCLITIC.sub(attach_enclitic, osis)
    osis = DROPPED.sub(BLOCK, osis)
    osis = INLINE.sub(JOIN, osis)
    osis = TAG.sub(BLOCK, osis)
    text = html.unescape(osis)
    text = re.sub(rf"(?<=\w)[{JOIN}{BLOCK}]+(?=\w)", " ", text)  # never glue two words
    text = re.sub(rf"{BLOCK}+(?=[,.;:!?)\]”’»])|(?<=[(\[“‘«¿¡]){BLOCK}+", "", text)
    text = text.replace(JOIN, "").replace(BLOCK, " ")
    return " ".join(text.split())


# ---------------------------------------------------------------- the modules

REFERENCE = re.compile(r"(.+) (\d+):(\d+)")


def read_modules(*modules: str) -> list[dict[tuple[str, int, int], str]]:
    """{(book, chapter, verse): OSIS text} of each SWORD Bible module, verses only (no C:0 headings)."""
    install = f"install it and the modules with `{INSTALL}`"
    if shutil.which("mod2imp") is None:
        raise DataError(f"The bible task reads its SWORD modules with mod2imp, which is not installed; {install}.")
    with ThreadPoolExecutor(len(modules)) as pool:  # all at once: each takes a second
        runs = list(pool.map(lambda m: subprocess.run(["mod2imp", m], capture_output=True, text=True), modules))
    read = []
    for module, run in zip(modules, runs):
        if run.returncode != 0 or "$$$" not in run.stdout:
            why = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[0].removeprefix("mod2imp: ")
            raise DataError(f"mod2imp cannot read the SWORD module {module} ({why}); {install}.")
        verses = {}
        for entry in run.stdout.split("$$$")[1:]:
            reference, _, body = entry.partition("\n")
            match = REFERENCE.fullmatch(reference.strip())
            if match and int(match[2]) > 0 and int(match[3]) > 0:
                verses[(match[1], int(match[2]), int(match[3]))] = body
        read.append(verses)
    return read


# A length-based alignment (Gale and Church, 1993) of a chapter's verses finds where the modules
# break verses in other places: Spanish characters per English one, and the variance per English
# character of a verse's deviation from that ratio, over this corpus; prior odds of each bead
# (English verses, Spanish verses), verse-for-verse by far the commonest.
LENGTH_RATIO = 0.96
LENGTH_VARIANCE = 2.0
BEAD_COST = {bead: -math.log(p) for bead, p in {(1, 1): 0.98, (1, 2): 0.008, (2, 1): 0.008, (2, 2): 0.004}.items()}


def length_cost(en: int, es: int) -> float:
    """-log P(a length mismatch at least this large) for texts of en and es characters that translate each other."""
    z = abs(LENGTH_RATIO * en - es) / math.sqrt(max((en + es / LENGTH_RATIO) / 2, 1) * LENGTH_VARIANCE)
    return -math.log(max(math.erfc(z / math.sqrt(2)), 1e-300))


def breaks_verses_differently(en: list[int], es: list[int]) -> bool:
    """Whether the best alignment of a chapter's verses (character lengths, as many on each side)
    merges two verses of one side against one of the other anywhere (a 1-2 or 2-1 bead). Two verses
    against two (2-2) is left alone: it is mostly a free rendering of one verse, not a shift."""
    n = len(en)
    # As many verses on each side: a path with a 1-2 bead has a 2-1 bead too, so it costs more than
    # the two beads' prior; a chapter whose verse-for-verse cost is below that has no such path.
    if sum(BEAD_COST[1, 1] + length_cost(a, b) for a, b in zip(en, es)) <= BEAD_COST[1, 2] + BEAD_COST[2, 1]:
        return False
    best = {(0, 0): (0.0, None)}  # (i English verses, j Spanish verses) -> (cost, last bead)
    for i in range(n + 1):
        for j in range(max(0, i - 1), min(n, i + 1) + 1):  # a shift of one verse at most
            options = [
                (best[i - a, j - b][0] + cost + length_cost(sum(en[i - a : i]), sum(es[j - b : j])), (a, b))
                for (a, b), cost in BEAD_COST.items()
                if (i - a, j - b) in best
            ]
            if options:
                best[i, j] = min(options)
    beads, i, j = [], n, n
    while (i, j) != (0, 0):
        a, b = best[i, j][1]
        beads.append((a, b))
        i, j = i - a, j - b
    return (1, 2) in beads or (2, 1) in beads


@functools.lru_cache(maxsize=1)
def aligned_verses() -> tuple[list[tuple[str, int, int, str, str]], list[tuple[str, int]]]:
    """((book, chapter, verse, English, Spanish) in canonical order, the dropped (book, chapter))."""
    source, target = read_modules(SOURCE_MODULE, TARGET_MODULE)
    books = {book for book, _, _ in target}
    text = {key: (verse_text(source[key]) if key in source else "", verse_text(osis)) for key, osis in target.items()}
    text.update({key: (verse_text(osis), "") for key, osis in source.items() if key[0] in books and key not in text})
    chapters: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for key in sorted(text):
        chapters.setdefault(key[:2], []).append(text[key])
    dropped = set()
    for (book, chapter), verses in chapters.items():
        if not all(en and es for en, es in verses):  # a verse one module lacks: its text is elsewhere
            dropped.add((book, chapter))
            if not (verses[-1][0] and verses[-1][1]):  # the last: it opens the next chapter
                dropped.add((book, chapter + 1))
        elif breaks_verses_differently([len(en) for en, _ in verses], [len(es) for _, es in verses]):
            dropped.add((book, chapter))
    order = {book: i for i, book in enumerate(dict.fromkeys(book for book, _, _ in target))}
    pairs = sorted(
        (key + text[key] for key in text if key[:2] not in dropped),
        key=lambda row: (order[row[0]], row[1], row[2]),
    )
    return pairs, sorted(dropped & chapters.keys())


def split_of(book: str) -> str:
    return "test" if book in TEST_BOOKS else "validation" if book in VALIDATION_BOOKS else "train"


def splits() -> dict[str, list[tuple[str, str]]]:
    """{"train", "validation", "test"}: (English, Spanish) verse pairs, by book; a held-out verse whose
    English occurs word for word in training ("Yahweh's word came to me, saying,") is left out."""
    parts: dict[str, list[tuple[str, str]]] = {"train": [], "validation": [], "test": []}
    for book, _, _, en, es in aligned_verses()[0]:
        parts[split_of(book)].append((en, es))
    seen = {en for en, _ in parts["train"]}
    for held in ("validation", "test"):
        parts[held] = [(en, es) for en, es in parts[held] if en not in seen]
    return parts


@register_task
class BibleEnEs(Seq2SeqTask):
    """English -> Spanish Bible verses (WEB -> Reina-Valera 1909), split by book.

    test: Ruth, Esther, Proverbs, Daniel, Romans, 1 Corinthians, Hebrews, Revelation (2,991 verses).
    validation: Ecclesiastes, Song of Solomon, Lamentations, Ezekiel, Galatians, Ephesians,
    Philippians, Colossians, 1-2 Thessalonians, James, 1-2 Peter, Jude (2,674 verses).
    train: the other 43 books (24,271 verses), Samuel/Kings/Chronicles and the four Gospels among
    them. How verses are read and aligned, and why by book: see the module docstring."""

    name = "bible-en-es"
    description = "English -> Spanish Bible verses (WEB -> Reina-Valera 1909), split by book (offline, SWORD modules)"
    offline = True

    def default_source(self, data_cfg):
        parts = splits()
        return parts["train"], parts["validation"], parts["test"]

