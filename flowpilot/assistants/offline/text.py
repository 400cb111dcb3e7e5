"""Text analysis for the offline engine: words, stems, clauses, negation, safe quoting."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from flowpilot.text import INVISIBLE_FORMATTING, strip_control_characters

# --------------------------------------------------------------------------- text


_SEPARATORS = re.compile(r"[\W_]+")
_APOSTROPHES = str.maketrans("", "", "'\u2019`")
# A drive letter ("the mapped S: drive", "P:\\Finance") says which drive, not what is wrong:
# dropped, so "mapped S: drive" reads as "mapped drive".
_DRIVE_LETTER = re.compile(r"(?<![\w:])[a-z]:(?=\s|\\|/|$)")


def words(text: str) -> tuple[str, ...]:
    """Casefolded words of ``text`` with punctuation and drive letters removed ("can't" ->
    "cant")."""
    # Zero-width and bidi characters pasted from chat apps ("out\u200blook") are not there.
    visible = INVISIBLE_FORMATTING.sub("", text)
    folded = _DRIVE_LETTER.sub(" ", visible.casefold().translate(_APOSTROPHES))
    return tuple(_SEPARATORS.sub(" ", folded).split())


def normalize(text: str) -> str:
    """Casefold, strip punctuation and collapse whitespace: the key for comparing titles."""
    return " ".join(words(text))


def _stem(word: str) -> str:
    # Just enough to let "printers" match "printer"; applied to both phrases and text,
    # so the odd wrong stem ("windows" -> "window") still matches itself.
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    if len(word) == 3 and word[2] == "s" and word[1] not in "aeiouys":
        return word[:2]  # "pcs", "aps", "vms", "pop-ups": short plurals of short words
    return word


def _stemmed(text: str) -> tuple[str, ...]:
    return tuple(_stem(word) for word in words(text))


# Words that may sit inside a phrase without changing it: "the disk is almost full"
# states "disk full", "printer is completely offline" states "printer offline". Skipped
# between the words of a phrase (never before its first word), at most MAX_FILLERS.
FILLERS = frozenset(
    {"is", "are", "was", "were", "been", "be", "am", "almost", "nearly", "completely"}
    | {"totally", "really", "very", "super", "quite", "pretty", "just", "basically"}
    | {"literally", "fully", "entirely", "now", "still", "all", "so"}
    | {"seem", "look", "appear"}  # stemmed: "seems", "looks", "appears" too
)
MAX_FILLERS = 2


# Never skipped inside a phrase, even loosely: they change what it says ("queue is not
# empty", "files won't open", "printer or scanner").
_GAP_STOPS = frozenset({"but", "though", "however", "except", "or", "and", "if", "when"})


def phrase_end(
    clause: tuple[str, ...], start: int, rest: tuple[str, ...], *, loose: bool = False
) -> int:
    """Where the phrase whose first word is ``clause[start]`` and whose other words are
    ``rest`` ends in ``clause`` (filler words between its words allowed), or -1.

    ``loose`` (for facts, not family keywords) also lets one other word sit inside, a
    qualifier ("spooler service is stopped" states "spooler stopped", "stuck in the print
    queue" states "stuck in the queue"), never a negation or a contrast."""
    position = start + 1
    skipped = 0
    qualified = False
    for word in rest:
        while position < len(clause) and clause[position] != word and skipped < MAX_FILLERS:
            between = clause[position]
            if between in FILLERS:
                pass
            elif loose and not qualified and between not in NEGATIONS | _GAP_STOPS:
                qualified = True
            else:
                break
            position += 1
            skipped += 1
        if position >= len(clause) or clause[position] != word:
            return -1
        position += 1
    return position


# Evidence is looked for clause by clause, and a phrase right after a negation does not
# count: "not on spamhaus" is no evidence of a blocklist, "No, it works from a hotspot" is.
# Sentence and clause punctuation ends a clause; a period or comma inside "2.1", an IP
# address or "1,000" does not, nor a colon ("PasswordExpired : True" is one statement).
_CLAUSE_BREAKS = re.compile(r"[.!?,;]+(?=\s|$)|[()\[\]\n\"\u201c\u201d]+|\s[-\u2013\u2014]+\s")
NEGATIONS = frozenset(
    {"not", "no", "never", "nor", "neither", "without", "isnt", "arent", "wasnt", "werent"}
    | {"doesnt", "dont", "didnt", "cant", "cannot", "couldnt", "wont", "hasnt", "havent"}
    | {"hadnt"}
)
NEGATION_REACH = 3  # words before a phrase that can negate it


def _clauses(text: str) -> tuple[tuple[str, ...], ...]:
    """The stemmed words of each clause of ``text``."""
    return tuple(words for part in _CLAUSE_BREAKS.split(text) if (words := _stemmed(part)))


class _Statements:
    """Clauses indexed by word, to ask cheaply whether any of them states a phrase."""

    def __init__(self, clauses: Iterable[tuple[str, ...]]) -> None:
        self._at: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for clause in clauses:
            for position, word in enumerate(clause):
                self._at.setdefault(word, []).append((clause, position))

    def state(self, phrase: tuple[str, ...]) -> bool:
        """Whether some clause says ``phrase`` without a negation just before it."""
        for clause, start in self._at.get(phrase[0], ()):
            if clause[start : start + len(phrase)] != phrase:
                continue
            if not NEGATIONS.intersection(clause[max(0, start - NEGATION_REACH) : start]):
                return True
        return False


def _normalize_command(command: str) -> str:
    return " ".join(command.casefold().split())


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def _plain(text: str, limit: int = 160) -> str:
    """Untrusted text as one short line that can never be read as an HTML tag."""
    # No control, bidi or zero-width characters: a quote must read as it was written.
    line = " ".join(INVISIBLE_FORMATTING.sub("", strip_control_characters(text)).split())
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "\u2026"
    return line.replace("<", "\u2039").replace(">", "\u203a")


def _inline(text: str, limit: int = 100) -> str:
    """Untrusted text made safe to drop into a Markdown sentence (no HTML, no markup)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _plain(text, limit))


# ------------------------------------------------------------- typos and languages

# A handful of common non-English words technicians paste from users, mapped to the
# English word the knowledge files use. Applied word by word before matching.
FOREIGN_WORDS = {
    "imprimante": "printer",
    "impresora": "printer",
    "drucker": "printer",
    "stampante": "printer",
    "contrasena": "password",
    "contraseña": "password",
    "passwort": "password",
    "kennwort": "password",
    "senha": "password",
    "correo": "email",
    "courriel": "email",
    "bloqueado": "locked",
    "bloqueada": "locked",
    "gesperrt": "locked",
    "bloque": "locked",
    "bloqué": "locked",
    "lento": "slow",
    "langsam": "slow",
    "lent": "slow",
    "pantalla": "screen",
    "bildschirm": "screen",
    "écran": "screen",
    "ecran": "screen",
    "impression": "print",
    "imprimir": "print",
    "drucken": "print",
    "wlan": "wifi",
    "internetverbindung": "internet",
    "conexion": "connection",
    "conexión": "connection",
    "verbindung": "connection",
    "virus": "malware",
}

FUZZY_MIN_LENGTH = 5  # shorter words are too close to each other to correct safely
LONG_WORD = 10  # from this length a typo may hold two slips or a wrong letter
# Common English words that sit one letter away from a knowledge word ("though" /
# "through"): never typos.
COMMON_WORDS = frozenset(
    {"though", "through", "there", "their", "which", "would", "could", "should", "about"}
    | {"after", "before", "other", "these", "those", "where", "while", "every", "since"}
    | {"still", "today", "again", "never", "always", "thing", "things", "think", "start"}
)


class Speller:
    """Maps a typo to the closest word the knowledge uses ("outlok" -> "outlook",
    "crashng" -> "crashing", "expried" -> "expired").

    What counts as a typo is what typing produces: a letter left out or doubled, or two
    letters swapped; a wrong letter only in a long word (a wrong letter in a short word
    is usually another word: "blink", "stock"). Only words the knowledge files use are
    candidates, a typo keeps its first letter, and a word in the vocabulary, a common
    English word, a code with digits or a word that decides a clause's direction
    (negations, "fine", fillers) is never changed.
    """

    def __init__(self, vocabulary: Iterable[str]) -> None:
        from rapidfuzz import process
        from rapidfuzz.distance import OSA, Indel

        self._vocabulary = frozenset(w for w in vocabulary if w)
        by_letter: dict[str, list[str]] = {}
        for word in sorted(self._vocabulary):
            if len(word) >= FUZZY_MIN_LENGTH - 1:
                by_letter.setdefault(word[0], []).append(word)
        self._by_letter = by_letter
        self._process, self._indel, self._osa = process, Indel.distance, OSA.distance
        self._cache: dict[str, str] = {}

    def correct(self, word: str) -> str:
        if word in self._vocabulary or len(word) < FUZZY_MIN_LENGTH:
            return word
        if any(ch.isdigit() for ch in word) or word in COMMON_WORDS:
            return word
        if word in NEGATIONS or word in POSITIVE_STATES or word in FILLERS:
            return word  # what decides a clause's direction is never "corrected"
        found = self._cache.get(word)
        if found is None:
            found = self._closest(word)
            if len(self._cache) < 20_000:
                self._cache[word] = found
        return found

    def _closest(self, word: str) -> str:
        candidates = self._by_letter.get(word[0], ())
        long_word = len(word) >= LONG_WORD
        # Letters left out or added (one; two in a long word, where a wrong letter, two
        # Indel edits, is allowed too); a longer candidate first: typing drops letters.
        near = self._process.extract(
            word, candidates, scorer=self._indel, score_cutoff=2 if long_word else 1, limit=None
        )
        if near:
            best = min(near, key=lambda m: (m[1], -len(m[0]), m[0]))
            return best[0]
        # Two neighbouring letters swapped ("expried"): same letters, one OSA edit.
        for candidate in candidates:
            if (
                len(candidate) == len(word)
                and sorted(candidate) == sorted(word)
                and self._osa(word, candidate) == 1
            ):
                return candidate
        return word


# ----------------------------------------------------------- what a sentence states

# "Outlook and everything else OK", "MTU is fine", "OWA works", "relay settings look
# right": the phrase is named as working, which is no evidence of a problem with it.
POSITIVE_STATES = frozenset(
    {"ok", "okay", "fine", "work", "works", "working", "normal", "normally", "good", "healthy"}
    | {"unaffected", "correct", "right", "alright"}
)
POSITIVE_REACH = 4  # words after a phrase that can say it is fine
# Verbs that say something works ("gateway pings", "other files open"): a fact made of one
# is itself good news, and "fine" after it agrees rather than denies it.
SUCCESS_VERBS = frozenset(  # stemmed: "pings", "responds", "replies", "passes" read as these
    {"ping", "respond", "open", "load", "resolve", "connect", "print", "sync", "answer"}
    | {"reply", "replie", "pass", "passe", "passed", "succeed", "succeeded"}
)


# Stemmed forms: "stops", "quits", "ceases" read as these.
_STOPPED = frozenset({"stopped", "stop", "quit", "ceased", "cease"})


def states_fine(clause: tuple[str, ...], end: int) -> bool:
    """Whether the words right after position ``end`` say the thing named is fine."""
    after = clause[end : end + POSITIVE_REACH]
    if not POSITIVE_STATES.intersection(after):
        return False
    # "works now" right after a fix is about the fix; "doesn't work" and "stopped
    # working" are the problem.
    return not (NEGATIONS | _STOPPED).intersection(after)


# A report that the problem is gone: "works now", "resolves again", "fixed", "solved".
_RESOLVED = re.compile(
    r"\b(?:"
    r"(?:works?|working|resolves?|resolving|loads?|loading|prints?|printing|opens?|connects?"
    r"|syncs?|syncing|signs? in|logs? in|comes? up|came up|is back|are back|back up)"
    r"(?:\s+\w+){0,3}?\s+(?:now|again|normally)"
    r"|problem (?:is )?(?:solved|fixed|resolved|gone)|(?:that|this|it) (?:fixed|solved) it"
    r"|(?:is|are|was|now) (?:already )?(?:fixed|resolved|solved|sorted)|fixed it|all green"
    r"|back to normal|already (?:been )?(?:fixed|resolved|solved|sorted)"
    r"|(?:it'?s|its|all|everything(?: is)?) (?:good|fine|ok|okay|working) now"
    r"|that (?:did|fixed|solved|sorted) (?:it|the trick)"
    r"|^\W*(?:sorted|resolved|fixed|solved)\b(?!\s*\?)"
    r"|(?:user|she|he|they|customer) (?:\w+ )?confirm(?:s|ed)? (?:that )?"
    r"(?:\w+ ){0,3}(?:works|working)"
    r"|no more (?:prompts?|errors?|lock ?outs?|crashes|drops?|disconnects?|pop-?ups?)"
    r"|no (?:new|further) (?:prompts?|lock ?outs?|crashes|drops?|disconnects?|bounces?"
    r"|complaints?|pop-?ups?)"
    r"|(?:has ?n[o']?t|has not|have ?n[o']?t|have not) (?:been )?(?:locked|crashed|dropped"
    r"|happened|come back|returned|failed)(?: out)? (?:again|since)"
    r"|(?:does ?n[o']?t|no longer)"
    r" \w+(?: \w+){0,3} any ?more|(?:he|she|they|user|users) (?:can|could) (?:log|sign) in"
    r"|(?:is|are) (?:all )?(?:good|fine) now|looks? (?:clean|good|fine) now|all good"
    r"|(?:is|are|its|it's) (?:all )?back (?:up|online|to normal)|up and running|back online"
    r"|(?:gets?|got|has|have|is|are) (?:his |her |their |the |its )?(?:\w+ )?\w+ back\b"
    r"|no (?:more )?\w+ (?:for|since|in) (?:the last |an? |this )?(?:\d+ )?"
    r"(?:minutes?|hours?|days?|morning|afternoon|lunch|yesterday|then|reboot)(?: now)?"
    r"|(?:test )?page (?:came out|printed)|can (?:print|connect|log in|sign in) again"
    r"|(?:screens?|monitors?|displays?|site|page|desktop) (?:both )?(?:come|comes|came) (?:up|on)"
    r"|(?:drive|share|printer|folder|mailbox|icon|team|desktop) is (?:there|back)(?: now)?"
    r")\b",
    re.IGNORECASE,
)
_BROKEN_WORDS = (
    r"fail\w*|errors?|broken|not|no|same|stuck|slow|hang\w*|freez\w*|drop\w*|blank|missing"
    r"|locked|offline|down|can ?n[o']?t|cant|cannot|does ?n[o']?t|doesnt|won'?t|wont|unable"
    r"|prompt\w*|ask\w*|crash\w*|happen\w*"
)
# The problem still (or again) there: "still prompting", "stuck again", "problem is back",
# "spoke too soon", "a different error now", and a success with a "but" that takes it back
# ("VPN connects again but no internal sites load", "test page printed but jobs still stuck").
_STILL_BROKEN = re.compile(
    rf"\bstill\b[^.!?\n]{{0,40}}\b(?:{_BROKEN_WORDS}|there)\b"
    r"|\b(?:prompt\w*|asks?|asking|fails?|failed|failing|locked|crash\w*|disconnect\w*|drops?"
    r"|dropping|freez\w*|stuck|hang\w*|stopped|errors?) (?:\w+ ){0,3}again\b"
    r"|\b(?:not|n[o']t|never) (?:\w+ )?(?:fixed|resolved|working|work)\b"
    r"|\bsame (?:error|problem|issue|message|result|thing)\b"
    r"|\b(?:problem|issue|error|fault|prompts?|crash\w*|it) (?:is|are|was|has|have|came|comes)"
    r" (?:\w+ )?back\b(?! (?:up|online|to normal|on))"
    r"|\bspoke too soon\b|\b(?:different|new|another) error\b|\berror (?:is )?now different\b"
    rf"|\b(?:but|though|however|except)\b[^.!?\n]{{0,60}}\b(?:{_BROKEN_WORDS})\b",
    re.IGNORECASE,
)

# A step that could not be carried out: its outcome is no result either way ("couldn't do
# it, printer is in a locked room", "don't have access to run commands on this PC", "user
# doesn't remember the old password").
_NOT_DONE = re.compile(
    r"\b(?:could ?n[o']?t|couldnt|can ?n[o']?t|cant|cannot|unable to|not able to|was ?n[o']?t"
    r" able to|did ?n[o']?t get to|didnt get to) (?:\w+ ){0,2}?(?:do|run|try|test|perform"
    r"|complete|finish|get to)\b(?! \w+ (?:working|fixed))"
    r"|\b(?:do ?n[o']?t|dont|does ?n[o']?t|doesnt|(?:i|we) have no|no) (?:have )?(?:\w+ )?"
    r"(?:access|rights|permissions?) (?:to (?:run|do|open|get into|the (?:room|server|console"
    r"|admin|pc|machine|laptop|device))|on (?:this|that|the) (?:pc|machine|laptop|server|device))"
    r"|\b(?:do ?n[o']?t|dont|does ?n[o']?t|doesnt|can ?n[o']?t|cant) (?:remember|know|recall)"
    r" (?:\w+ ){0,2}(?:password|passcode|pin)\b"
    r"|\bno (?:key|access) to the (?:room|cabinet|closet|rack)\b"
    r"|\b(?:not tried|did ?n[o']?t try|didnt try|skipped it|not possible)\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)
def reports_not_done(text: str) -> bool:
    """Whether a step's recorded outcome says it could not be carried out."""
    return bool(text and _NOT_DONE.search(text))


@lru_cache(maxsize=4096)
def reports_resolved(text: str) -> str:
    """The words that report the problem gone ("names resolve again"), or ""."""
    if not text or _STILL_BROKEN.search(text):
        return ""
    found = _RESOLVED.search(text)
    return found.group(0) if found else ""


@lru_cache(maxsize=4096)
def reports_still_broken(text: str) -> bool:
    """Whether ``text`` says the problem is still (or again) there."""
    return bool(text and _STILL_BROKEN.search(text))


# ---------------------------------------------------------------- operating system

OS_NAMES = {"windows": "Windows", "macos": "macOS", "linux": "Linux", "mobile": "a phone"}
_MACOS = (
    r"\b(?:mac ?os|macbook\w*|imac|mac ?mini|mac|os x|osx|sonoma|ventura|sequoia|monterey"
    r"|keychain)\b"
)
_LINUX = (
    r"\b(?:linux|ubuntu|debian|centos|rhel|red hat|fedora|rocky|alma|suse|nginx|apache2"
    r"|systemd|bash)\b"
)
_WINDOWS = (
    r"\b(?:windows|win ?(?:7|8|10|11)|surface|server 20\d\d|iis|powershell|cmd|thinkpad"
    r"|latitude|elitebook|optiplex|probook|lenovo|dell|hp)\b"
)
_OS_PATTERNS = (
    ("macos", re.compile(_MACOS, re.I)),
    ("linux", re.compile(_LINUX, re.I)),
    ("mobile", re.compile(r"\b(?:iphone|ipad|ios|android|galaxy|pixel)\b", re.I)),
    ("windows", re.compile(_WINDOWS, re.I)),
)


def detect_os(*texts: str) -> str:
    """ "windows", "macos", "linux", "mobile" or "" from the device field or the chat.

    The first text that names an OS wins (pass the device field first).
    """
    for text in texts:
        if not text:
            continue
        for os_name, pattern in _OS_PATTERNS:
            if pattern.search(text):
                return os_name
    return ""


# -------------------------------------------------------------------- placeholders

# What a command needs from the session. Filled from what it says (``session_values``);
# anything it does not say is shown as ``<name>`` for the technician to fill, never a
# made-up example value.
PLACEHOLDER = re.compile(
    r"\{(user|upn|device|ip|server|drive|share|group|printer|dns|scope|certificate|installer)\}"
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IPV4 = re.compile(r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b")
# A host name: letters and digits with hyphens (PC-ACC-07, LAPTOP-7F3K2, fs-02) or letters
# then two or more digits (ACC01, DC01, TS02, build01); never a model's "G8", "M3" or "840".
_HOSTNAME = re.compile(
    r"\b(?=[\w-]*\d)(?:[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+|[A-Za-z]{2,}\d{2,})\b"
)
# A user name where the text gives one: "username: jdoe", "user jsmith", "C:\Users\jdoe",
# "ACME\mkeller"; never an ordinary word after "user" ("user account keeps getting locked").
_USER_HINT = re.compile(
    r"(?:C:\\Users\\|/home/|\buser(?:name)?\s*[:=]?\s*|(?<![\\\w.-])[A-Z][A-Z0-9-]{1,14}\\(?!\\))"
    r"([A-Za-z][\w.-]{1,30})",
    re.I,
)
_NOT_A_USER_NAME = frozenset(
    {"account", "accounts", "profile", "profiles", "name", "names", "is", "was", "has", "had"}
    | {"can", "cant", "cannot", "could", "says", "said", "gets", "got", "keeps", "kept"}
    | {"reports", "reported", "called", "calls", "tried", "tries", "sees", "saw", "wants"}
    | {"needs", "and", "or", "with", "on", "in", "at", "of", "for", "to", "from", "the", "a"}
    | {"an", "who", "that", "which", "its", "it", "does", "doesnt", "did", "didnt", "will"}
    | {"wont", "still", "now", "again", "also", "just", "only", "here", "there", "mailbox"}
    | {"password", "passwords", "data", "folder", "folders", "desktop", "session", "sessions"}
    | {"logs", "log", "signs", "sign", "experience", "settings", "rights", "group", "groups"}
)
# A mapped drive's letter ("the P: drive", "S:\Finance"; never C:, the system drive) and a
# UNC path's share.
_DRIVE = re.compile(r"(?<![\w:\\])([A-Za-z]):(?=\s*drive\b|\\)|\bdrive\s+([A-Za-z]):(?!\w)", re.I)
_UNC_SHARE = re.compile(r"\\\\[\w.-]+\\([\w$.-]+(?: [\w$.-]+)*?)(?=\\|\s|$|[),;'\"])")


# A server named in the text: a UNC path, a URL, a host name that follows the usual
# server naming (DC01, fs-02, TS02, build01, web02) or a fully qualified name.
_SERVER_MENTION = re.compile(
    r"\bssh\s+(?:-\S+\s+)*[\w.-]+@([A-Za-z0-9][\w.-]*[A-Za-z0-9])"
    r"|\\\\([A-Za-z0-9][\w.-]*)"
    r"|\b(?:smb|https?|ssh|rdp|afp)://(?:[\w.-]+@)?([A-Za-z0-9][\w.-]*[A-Za-z0-9])"
    r"|(?<![\w.@-])((?:[a-z]+-?)?(?:dc|fs|ts|srv|web|app|sql|prn|file|print|build|nas|rds|iis"
    r"|mail|exch|ex|db|vm|host)-?\d{1,3}[a-z]?)\b"
    r"|(?<![\w.@-])([a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:local|lan|corp|internal|intranet"
    r"|com|net|org|io|uk|de|fr|nl|eu))\b",
    re.IGNORECASE,
)
_SSH_LOGIN = re.compile(r"\bssh\s+(?:-\S+\s+)*([a-z_][\w.-]{0,30})@", re.I)
_SERVER_DEVICE = re.compile(r"\b(?:server|srv|dc|iis|nas|host)\b", re.I)


# An initial-dot-surname sign-in name ("m.chen", "jo.smith", "m.chen's account"): lower
# case, never part of a host, file or domain name ("hr.acme.com", "report.pdf").
_DOTTED_USER = re.compile(r"(?<![\w.@\\/-])([a-z]{1,2}\.[a-z]{2,20})(?![\w@-]|\.\w)")


def _user_name(text: str) -> str:
    """A user name the text gives ("user jsmith", "ssh raj@build01", "ACME\\mkeller",
    "m.chen"), or ""."""
    for found in _USER_HINT.finditer(text):
        if found.group(1).casefold() not in _NOT_A_USER_NAME:
            return found.group(1)
    found = _SSH_LOGIN.search(text)
    if found:
        return found.group(1)
    found = _DOTTED_USER.search(text)
    return found.group(1) if found else ""


@lru_cache(maxsize=1024)
def session_values(device: str, texts: tuple[str, ...]) -> dict[str, str]:
    """Values for command placeholders found in the session: device name, user, addresses.

    The device field names the user's machine ({device}); it names the server only when
    it says it is one ("Windows Server 2019 TS02"). Otherwise {server} is a server the
    problem or the chat names (a UNC path, a URL, "DC01", "intranet.acme.local"). What
    the session does not say stays a visible ``<server>`` for the technician to fill.
    """
    values: dict[str, str] = {}
    for text in (device, *texts):
        if not text:
            continue
        if "upn" not in values and (found := _EMAIL.search(text)):
            values["upn"] = found.group(0)
        found = None if "ip" in values else _IPV4.search(text)
        if found and not found.group(0).startswith(("255.", "0.")):
            values["ip"] = found.group(0)
        if "user" not in values and (name := _user_name(text)):
            values["user"] = name
        if "drive" not in values:
            letters = ((m.group(1) or m.group(2)).upper() for m in _DRIVE.finditer(text))
            if letter := next((x for x in letters if x != "C"), ""):
                values["drive"] = letter
        if "share" not in values and (found := _UNC_SHARE.search(text)):
            values["share"] = found.group(1)
    if device:
        # A device field like "Windows Server 2019 ACC01" names the machine by its host name.
        names = [m.group(0) for m in _HOSTNAME.finditer(device)]
        names = [
            n
            for n in names
            if not re.fullmatch(r"(?i)(win|windows|server|ios|macos)?\d+\w{0,2}", n)
        ]
        if names:
            values["device"] = names[-1]
            if _SERVER_DEVICE.search(device):
                values["server"] = names[-1]
    if "server" not in values:
        for text in texts:
            found = _SERVER_MENTION.search(text or "")
            if found:
                values["server"] = next(group for group in found.groups() if group)
                break
    if "user" not in values and "upn" in values:
        values["user"] = values["upn"].split("@", 1)[0]
    return values


def fill_placeholders(command: str, values: dict[str, str]) -> str:
    """``{user}`` and friends replaced by what the session says, else shown as ``<user>``."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or f"<{m.group(1)}>", command)


# --------------------------------------------------------------------- error codes

ERROR_CODE = re.compile(
    r"\b(0x[0-9a-f]{8})\b|\b(AADSTS\d{5,6})\b|\b((?:NET::)?ERR_[A-Z_]+)\b"
    r"|\b([45]\.\d\.\d{1,3})\b|\bHTTP (?:Error )?([45]\d\d)\b|\b([45]0[0-4]) (?:Bad Gateway"
    r"|Service Unavailable|Internal Server Error|Gateway Time-?out|Forbidden|Not Found)\b"
    r"|\b(DNS_PROBE_FINISHED_[A-Z_]+)\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)
def error_codes(text: str) -> tuple[str, ...]:
    """Error codes quoted in ``text``, normalised ("0x800f0922", "AADSTS50076", "5.7.1",
    "ERR_CERT_DATE_INVALID", "HTTP 503")."""
    found = []
    for match in ERROR_CODE.finditer(text or ""):
        number, code = next((n, g) for n, g in enumerate(match.groups(), start=1) if g)
        if number in {5, 6}:
            code = f"HTTP {code}"
        elif code[:2].lower() == "0x":
            code = code.lower()
        elif not code[0].isdigit():
            code = code.upper().removeprefix("NET::")
        if code not in found:
            found.append(code)
    return tuple(found)
