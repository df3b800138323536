"""What may follow an approval: thanks, a sign-off, the approver's name and their signature.

An approval is read only when nothing else was said. A correction or a comment in words
no list foresees ("Just Jane please", "Hang fire on this one", "PS remove Bob") leaves it
to a person, so what follows is read against what a closing holds, not against a list of
doubting words:

- blank lines, and lines that only say the approval again ("Happy to confirm this.");
- a sign-off ("Thanks", "Kind regards"), alone or with the approver's own name, or one in
  each of two languages ("Diolch / Thanks");
- the approver's own name (any of its words, with a title, or their initials), which, like
  a sign-off, begins the signature;
- once the signature has begun: a job title or organisation (capitalised words, none of an
  instruction), contact details (a label and a number, address or link), a postal address,
  a labelled line of working days or pronouns, and a device line ("Sent from my iPhone").

Anything else is returned, for the answer to be left to a person. A nickname the approval
request does not know ("Jo" for Joanne) is not their name here: the cost is a person
reading a plain approval, never an approval read from words that were not one.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

from workflow.reason_redaction import Signer, redact

# Words, lower-cased; an apostrophe joins "don't" into one word (workflow.replies too).
WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")
# The same, keeping case (names in a sign-off are capitalised).
CASED_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z0-9]+)*")

# Courtesies a rejection's reason is cut before (workflow.replies), longest first where one
# begins another.
COURTESIES = (
    ("thank", "you", "very", "much"),
    ("thanks", "very", "much"),
    ("many", "thanks"),
    ("thank", "you"),
    ("kind", "regards"),
    ("best", "wishes"),
    ("thanks",),
    ("thankyou",),
    ("thx",),
    ("cheers",),
    ("ta",),
    ("regards",),
)
# The sign-offs an approval may end with: those and more, the longest first, so that the
# longest one that opens a line is the one matched ("many thanks again", not "many thanks").
_SIGN_OFFS = tuple(
    sorted(
        {
            *COURTESIES,
            ("many", "thanks", "again"),
            ("thanks", "again"),
            ("with", "best", "wishes"),
            ("with", "many", "thanks"),
            ("with", "thanks"),
            ("all", "the", "best"),
            ("kindest", "regards"),
            ("best", "regards"),
            ("warm", "regards"),
            ("warmest", "regards"),
            ("yours", "sincerely"),
            ("yours", "faithfully"),
            ("best",),
            ("kr",),
            # Welsh: thanks, thank you very much, regards, warm regards.
            ("diolch",),
            ("diolch", "yn", "fawr"),
            ("cofion",),
            ("cofion", "cynnes"),
            ("cofion", "gorau"),
        },
        key=lambda phrase: (-len(phrase), phrase),
    )
)
# Lines that only say the approval again, each sentence of them one of these or a sign-off.
_AFFIRMATIONS = frozenset(
    {
        ("happy", "to", "confirm"),
        ("happy", "to", "confirm", "this"),
        ("happy", "to", "approve"),
        ("happy", "to", "approve", "this"),
        ("happy", "to", "support", "this"),
        ("happy", "with", "this"),
        ("i", "confirm"),
        ("i", "confirm", "this"),
        ("confirmed",),
        ("all", "fine"),
        ("fine", "by", "me"),
        ("this", "is", "fine"),
    }
)
_TITLES = frozenset({"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "professor", "sir"})
_DEVICES = (
    "sent from my iphone",
    "sent from my ipad",
    "sent from my android",
    "sent from my samsung galaxy smartphone",
    "sent from my galaxy",
    "sent from outlook for ios",
    "sent from outlook for android",
    "sent from outlook",
    "get outlook for ios",
    "get outlook for android",
    "sent from mail for windows",
    "sent from nhsmail",
)
# Words beside contact details on a line of them ("Tel: 0113 …", "Mobile 07700 …").
_CONTACT_LABELS = frozenset(
    [
        "t",
        "tel",
        "telephone",
        "phone",
        "ph",
        "m",
        "mob",
        "mobile",
        "e",
        "email",
        "mail",
        "w",
        "web",
        "website",
        "www",
        "direct",
        "line",
        "dial",
        "dd",
        "ext",
        "extension",
        "bleep",
        "fax",
        "f",
        "switchboard",
        "sb",
        "office",
        "main",
        "work",
        "secure",
        "nhsmail",
    ]
)
# Labelled lines a signature holds ("Working days: Monday to Thursday").
_LABELS = (
    "working days",
    "my working days",
    "working pattern",
    "working hours",
    "days of work",
    "non-working days",
    "hours",
    "pronouns",
)
_PRONOUNS = re.compile(
    r"\(?\s*(?:she|he|they|ze|xe)\s*/\s*(?:her|him|them|hers|his|theirs|zir|xem)"
    r"(?:\s*/\s*\w+)?\s*\)?",
    re.IGNORECASE,
)
# Words of an instruction or a doubt: a capitalised line holding one is no job title.
_INSTRUCTIONS = frozenset(
    [
        "remove",
        "delete",
        "revoke",
        "add",
        "swap",
        "replace",
        "cancel",
        "stop",
        "hold",
        "wait",
        "ignore",
        "change",
        "correct",
        "amend",
        "update",
        "exclude",
        "drop",
        "reject",
        "decline",
        "refuse",
        "only",
        "except",
        "also",
        "instead",
        "not",
        "no",
        "none",
        "fraud",
        "scam",
        "fake",
        "wrong",
        "error",
        "mistake",
        "draft",
        "test",
        "ps",
        "pps",
        "nb",
        "but",
        "gone",
        "left",
        "leave",
        "moved",
        "please",
        "pls",
        "plz",
        "tbc",
        "tba",
        "urgent",
        "include",
        "plus",
        "grant",
    ]
)
# What a name, title or organisation line holds: letters, digits, spaces and these.
_NAME_CHARACTERS = re.compile(r"[\w .,'&()/\u2013\u2014-]+")  # en and em dashes too
_TRAILING_BRACKETS = re.compile(r"\(([^()]*)\)$")
RULE = re.compile(r"[-_=*~—–]{2,}")
POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b")
_PLACEHOLDER_WORDS = frozenset({"number", "email", "web", "address", "removed"})
_NAME_WORDS = 6  # the most words of a name, job title or organisation line


def more_than_a_sign_off(lines: list[str], signer: Signer | None) -> str | None:
    """The first line that is not part of a closing (see the module's docstring); None when
    every line is."""
    signing = False
    for line in lines:
        stripped = line.strip()
        if not stripped or _is_affirmation(stripped) or _is_device_line(stripped):
            continue
        if RULE.fullmatch(stripped):  # a line drawn under the message or the signature ("--")
            continue
        if _is_sign_off(stripped, signer) or is_own_name(stripped, signer):
            signing = True
            continue
        if signing and _is_signature_line(stripped, signer):
            continue
        return stripped
    return None


def _is_affirmation(line: str) -> bool:
    sentences = [s for s in re.split(r"[.!;,]+", line) if s.strip()]
    return bool(sentences) and all(
        tuple(_words(s)) in _AFFIRMATIONS or _is_sign_off(s.strip(), None) for s in sentences
    )


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def _is_sign_off(line: str, signer: Signer | None) -> bool:
    """A sign-off, alone or followed by the approver's own name ("Thanks, Anil"), or one in
    each of two languages ("Diolch / Thanks")."""
    if "/" in line:
        first, *rest = (part.strip() for part in line.split("/"))
        return _is_sign_off(first, None) and all(
            _is_sign_off(part, signer) or is_own_name(part, signer) for part in rest
        )
    words = _words(line)
    if not _NAME_CHARACTERS.fullmatch(line.rstrip("!")):
        return False
    for phrase in _SIGN_OFFS:
        if tuple(words[: len(phrase)]) == phrase:
            rest = line.split(None, len(phrase))[len(phrase) :]
            return not rest or is_own_name(rest[0], signer)
    return False


def is_own_name(line: str, signer: Signer | None) -> bool:
    """The approver's own name: words of it, with a title or initials ("Dr A Patel",
    "Anil", "AP", "PATEL, Anil"), perhaps with pronouns or their organisation after it in
    brackets ("PATEL, Anil (THE SURGERY)")."""
    if signer is None:
        return False
    bare = _PRONOUNS.sub(" ", line).strip(" .,")
    after = _TRAILING_BRACKETS.search(bare)
    if (
        after
        and _is_title_line(after.group(1))
        and not _speaks_of_a_nominee(after.group(1), signer)
    ):
        bare = bare[: after.start()].strip(" .,")
    if not bare or not _NAME_CHARACTERS.fullmatch(bare):
        return False
    names = signer.name_words()
    if not names:
        return False
    initials = "".join(w[0] for w in names)
    words = _words(bare)
    return bool(words) and all(
        w in names
        or w in _TITLES
        or w in _QUALIFICATIONS
        or w == initials
        or (len(w) == 1 and w in initials)
        for w in words
    )


# Letters after a name ("Dr Anil Patel MBBS MRCGP"): they say nothing of the request.
_QUALIFICATIONS = frozenset(
    WORD.findall(
        """
        mbbs mbchb mb chb bm bch bmbs md mrcgp frcgp drcog dfsrh dch mrcp frcp frcs mrcs
        bsc msc ma ba phd rgn rn mpharm bds pgcert pgdip dip hons nmp fcmi mba mrcpch
        dffp mrcog frcog mph dpm
        """
    )
)


def _is_device_line(line: str) -> bool:
    """ "Sent from my iPhone", "Get Outlook for iOS<https://aka.ms/…>"."""
    return _LINK.sub("", line).lower().strip(" .") in _DEVICES


_LINK = re.compile(r"<[^<>\s]*>|https?://\S+")


def _is_signature_line(line: str, signer: Signer | None = None) -> bool:
    """A line of a signature, once it has begun."""
    if "|" in line:
        return all(
            not part.strip() or _is_signature_line(part.strip(), signer) for part in line.split("|")
        )
    low = line.lower().strip(" .")
    return (
        _is_device_line(line)
        or _is_contact_line(_without_days(line))
        or _is_labelled_line(low)
        or bool(_PRONOUNS.fullmatch(line.strip()))
        or (_is_address_line(line) and not _speaks_of_a_nominee(line, signer))
        or _is_days_line(line)
        or is_own_name(line, signer)  # "Dr Fiona Walsh | GP Partner | Moorside Practice"
        or (_is_title_line(_without_days(line)) and not _speaks_of_a_nominee(line, signer))
    )


def _without_days(line: str) -> str:
    """The line without a last bracket of working days ("GP Partner (Monday - Wednesday)")."""
    after = _TRAILING_BRACKETS.search(line)
    if after and _is_days_line(after.group(1)):
        return line[: after.start()].strip()
    return line


def _is_contact_line(line: str) -> bool:
    """Contact details and their labels, nothing else ("Tel: 0113 496 0000 ext 123"); an
    address's own words say no instruction ("E: please.also.add.bob@nhs.net")."""
    redacted = redact(line)
    if redacted == line or _instructs(line):
        return False
    return all(w in _CONTACT_LABELS or w in _PLACEHOLDER_WORDS for w in _words(redacted))


def _is_labelled_line(low: str) -> bool:
    """Working days or hours, or pronouns, under their label, and nothing else ("Hours:
    she is a locum for three months" is no signature)."""
    label, colon, value = low.partition(":")
    if not colon or label.strip() not in _LABELS:
        return False
    if label.strip() == "pronouns":
        return bool(_PRONOUNS.fullmatch(value.strip(" .")))
    return _is_days_line(value)


def _is_days_line(text: str) -> bool:
    """Days and times of work only ("Monday, Tuesday & Thursday", "Mon-Thu 8am - 2pm"),
    with at least one day or time in them."""
    words = _words(text)
    days_or_times = [w for w in words if w in _WEEKDAYS or _CLOCK.fullmatch(w)]
    return bool(days_or_times) and all(
        w in _WEEKDAYS or w in _BETWEEN_DAYS or _CLOCK.fullmatch(w) for w in words
    )


_WEEKDAYS = frozenset(
    WORD.findall(
        """
        monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur
        thurs fri sat sun mondays tuesdays wednesdays thursdays fridays weekdays
        """
    )
)
_BETWEEN_DAYS = frozenset(
    {"to", "and", "alternate", "mornings", "afternoons", "morning", "am", "pm"}
)
_CLOCK = re.compile(r"\d{1,2}(?:[.:]?\d{2})?(?:am|pm)?")


def _is_address_line(line: str) -> bool:
    """A line of a postal address with its postcode ("12 High Street, Leeds LS1 4AB"): each
    part before the postcode is read as a title line is, so that a postcode does not carry
    a statement ("Jane Smith Is A Locum LS1 4AP")."""
    if not POSTCODE.search(line) or not _NAME_CHARACTERS.fullmatch(line):
        return False
    parts = [part.strip() for part in POSTCODE.sub(" ", line).split(",")]
    return all(_is_address_part(part) for part in parts if part)


def _is_address_part(part: str) -> bool:
    """A part of an address line: read as a title line is, except that a locality of two
    words may name no kind ("Cowgate, Great Horton, Bradford BD7 4DR")."""
    return _reads_as_a_title(part) and (len(_words(part)) <= 2 or _names_what_it_is(part))


def _is_title_line(line: str) -> bool:
    """A job title, an organisation or a line of its address ("GP Partner", "The Riverside
    Surgery, Leeds", "12 High Street"): a few capitalised words, nothing a sentence ends
    with, none of an instruction, of time or of a statement, and naming what it is.
    Capitalised words alone are not enough: "From 1 April", "Jane Retires Friday" or "Jane
    Is A Locum" would pass."""
    return _reads_as_a_title(line) and _names_what_it_is(line)


def _reads_as_a_title(line: str) -> bool:
    """A few capitalised words, nothing a sentence ends with, and no word of an
    instruction, of time or of a statement."""
    if not _NAME_CHARACTERS.fullmatch(line) or line.endswith((".", ",")) or line.startswith("-"):
        return False
    tokens = _cased_tokens(line)
    if not tokens or len(tokens) > _NAME_WORDS or _instructs(line):
        return False
    if set(_words(line)) & _NOT_OF_A_TITLE or _DATE.search(line):
        return False
    if tokens[0].lower() in _JOINING or line.lstrip().startswith("&"):
        return False  # joined to what came before: "And Bob Practice Manager"
    return all(t[0].isupper() or t[0].isdigit() or t.lower() in _SMALL for t in tokens)


def _names_what_it_is(line: str) -> bool:
    """Each comma part of the line names a post, an organisation, an address or a place,
    or is where the organisation before it is; or the line is a practice named for its
    partners."""
    if _is_partners_practice(line.strip()):
        return True
    parts = [part.strip() for part in line.split(",") if part.strip()]
    return all(
        _names_a_post_or_place(part) or (n > 0 and _a_locality_of(part, parts[n - 1]))
        for n, part in enumerate(parts)
    )


def _a_locality_of(part: str, before: str) -> bool:
    """One word after an organisation's or an address's name, where it is ("Boots
    Opticians, Briggate", "Well Pharmacy, Armley"); after a post it would be a comment
    ("GP Partner, Unconvinced")."""
    words = _words(before)
    return len(_words(part)) == 1 and bool(words) and words[-1] in _ORGANISATION_OR_ADDRESS


_SMALL = frozenset({"and", "of", "the", "for", "in", "at", "&"})


def _names_a_post_or_place(part: str) -> bool:
    """A part of a signature line names what it is: it ends in the word for a post, an
    organisation, an address or an area ("GP Partner", "Elm Tree Medical Centre", "12 High
    Street", "NHS Cheshire and Merseyside"), or is a place's name ("Leeds", "Milton
    Keynes"); one word may also be a qualification, an acronym ("SIRO") or a chain's name
    ("Specsavers"). A word of a post earlier in the line is not enough, and a word no list
    knows is not a name for want of others: "Partner Dislikes Jane", "Valid 3 Mths" and
    "Regretfully" are statements, for a person to read."""
    words = _words(part)
    if " ".join(words) in _gb_places():
        return True
    named = [w for w in words if w not in _SMALL and not w.isdigit()]
    if not named:
        return True  # a number ("Suite 4" is read with its word)
    if len(named) == 1:
        return _a_known_word(named[0], part)
    # Welsh names its kind first ("Canolfan Iechyd Tŷ Newydd", "Meddygfa'r Stryd Fawr").
    return named[-1] in _HEADS or named[0] in _FIRST_HEADS


def _a_known_word(word: str, part: str) -> bool:
    """A word standing alone in a signature: a post, an organisation's or an address's
    word, a qualification, a chain's name, or an acronym written in capitals."""
    if word in _HEADS or word in _FIRST_HEADS or word in _QUALIFICATIONS or word in _CHAINS:
        return True
    return any(token.isupper() and 2 <= len(token) <= 6 for token in CASED_WORD.findall(part))


# Chains whose name stands alone under a pharmacist's or an optometrist's title.
_CHAINS = frozenset(
    WORD.findall(
        """
        specsavers boots lloydspharmacy superdrug asda tesco sainsbury's morrisons rowlands
        jhoots scrivens leightons optom vision express
        """
    )
)


def _is_partners_practice(line: str) -> bool:
    """A practice named for its partners ("Drs Patel & Shah", "Drs Patel, Shah and Jones",
    "Drs Patel & Partners"), whose names read as surnames: "Drs Against, Unanimously" and
    "Drs Patel and Unhappy" are a vote and a mood, not a practice."""
    if not _PARTNERS_PRACTICE.fullmatch(line):
        return False
    names = _PARTNERS_NAME.findall(line)[1:]  # after "Drs"
    return all(_reads_as_a_surname(name) for name in names if name != "Partners")


# A practice named for its partners: "Drs Patel & Shah", "Drs Patel, Shah and Jones".
_PARTNERS_PRACTICE = re.compile(
    r"Drs\.? [A-Z][A-Za-z'-]+(?:(?:,| &| and) [A-Z][A-Za-z'-]+)+(?: (?:&|and) Partners)?"
)
_PARTNERS_NAME = re.compile(r"[A-Z][A-Za-z'-]+")


def _reads_as_a_surname(name: str) -> bool:
    """A partner's name after "Drs": no word of a statement, a doubt, an instruction,
    voiding or time, no word of an opinion or of how many agree ("Against", "Unanimous",
    "Majority"), and no adverb ("Unanimously"; "Kelly" and "Daly" stay names)."""
    words = _words(name.replace("-", " "))
    return bool(words) and not any(
        w in _NOT_AN_ANSWERS_CLOSING
        or w in _NOT_OF_A_TITLE
        or w in _JOINING
        or w in _SMALL
        or w in _OPINIONS
        or w in _AFFIRMING
        or w.endswith(_ADVERB_ENDINGS)
        for w in words
    )


# Words of an opinion, or of how many hold it: after "Drs" they are a vote, not a name.
_OPINIONS = frozenset(
    WORD.findall(
        """
        against for pro contra unanimous unanimously happy unhappy glad sad content
        discontent satisfied dissatisfied unsatisfied agreed agree agrees agreeing
        disagreed supportive unsupportive support supported supporting opposed favour
        favor favourable favorable unfavourable willing unwilling sure certain uncertain
        doubtful doubt doubts worried concerned divided split mixed all both none
        neither either majority minority most some many few several every each any
        everyone nobody somebody yes ok okay fine approve approved approving consensus
        """
    )
)
# Words of an answer's own affirmations ("Happy To Confirm"), word by word.
_AFFIRMING = frozenset(w for phrase in _AFFIRMATIONS for w in phrase)
# Endings of English adverbs ("Unanimously", "Reluctantly", "Regretfully"), long enough
# that surnames ending in "-ly" ("Kelly", "Daly", "McNally", "Connolly") are not taken.
_ADVERB_ENDINGS = tuple(
    WORD.findall(
        """
        ously fully ively ably ibly edly ingly ntly lessly ially ically tally ually tely rely
        ngly rmly stly ctly ghly rtly mally ply wly dly
        """
    )
)


@cache
def _gb_places() -> frozenset[str]:
    """Places in Great Britain of 500 people or more, by name (scripts/gb_places.py)."""
    text = files("workflow").joinpath("gb_places.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def _cased_tokens(line: str) -> list[str]:
    """The line's words, keeping case, a place whose name holds small words ("Stoke-on-Trent",
    "Newcastle upon Tyne") taken as one capitalised word. Only the places listed: "X-on-Y"
    in general may be a comment ("Starts-on-Monday")."""
    return CASED_WORD.findall(_SMALL_WORDED_PLACES.sub("Place", line))


# English places whose names hold words in lower case, hyphenated or not. One missing costs
# a person reading a plain approval.
_SMALL_WORDED_PLACES = re.compile(
    r"(?i)\b(?:"
    + "|".join(
        name.replace("-", "[- ]")
        for name in [
            "Stoke-on-Trent",
            "Weston-super-Mare",
            "Newcastle-upon-Tyne",
            "Newcastle-under-Lyme",
            "Kingston-upon-Hull",
            "Kingston-upon-Thames",
            "Burton-upon-Trent",
            "Burton-on-Trent",
            "Stratford-upon-Avon",
            "Berwick-upon-Tweed",
            "Southend-on-Sea",
            "Leigh-on-Sea",
            "Clacton-on-Sea",
            "Westcliff-on-Sea",
            "Ashby-de-la-Zouch",
            "Barrow-in-Furness",
            "Henley-on-Thames",
            "Walton-on-Thames",
            "Sunbury-on-Thames",
            "Staines-upon-Thames",
            "Bradford-on-Avon",
            "Chapel-en-le-Frith",
            "Lee-on-the-Solent",
            "Ross-on-Wye",
            "Bourton-on-the-Water",
            "Moreton-in-Marsh",
            "Stockton-on-Tees",
            "Sutton-in-Ashfield",
            "Kirkby-in-Ashfield",
            "Chester-le-Street",
            "Wotton-under-Edge",
            "Shipston-on-Stour",
            "Sutton-on-Sea",
            "Frinton-on-Sea",
            "Walton-on-the-Naze",
            "Bexhill-on-Sea",
            "Thornton-le-Dale",
            "Poulton-le-Fylde",
            "Lytham-St-Annes",
            "Hetton-le-Hole",
            "Houghton-le-Spring",
            "Stow-on-the-Wold",
            "Bishop's-Stortford",
            "Market-Harborough",
            "Sutton-in-Craven",
        ]
    )
    + r")\b"
)


# Words of time and of statements: a line holding one says when or what, not who signs
# ("From 1 April", "Jane Retires Friday", "Use Bob As Practice Manager"). Words that are
# also names of places and firms ("Day Lewis", "March") are left out.
_NOT_OF_A_TITLE = frozenset(
    WORD.findall(
        """
        january february april june july august september october november december
        jan feb apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday
        friday saturday sunday today tomorrow tonight yesterday week weeks month months
        year years days from until till til starting starts effective wef after before
        when since retire retires retiring retired resigned resigning leaving
        is are was were be been being am as use now too this that these those he
        she they him her his hers them their we you me my just still already
        soon former formerly previous previously ex unknown nominee nominees suspicious
        suspect unverified duplicate fraudulent genuine identity ends ended ending expires
        expired married maiden name code request requests requested dependent depending
        depends contingent awaiting following
        """
    )
)
# Words that join a line to what came before it, so that it adds to the answer ("And Bob
# Practice Manager", "Plus Jane Smith Receptionist"): no title or organisation begins so.
_JOINING = frozenset({"and", "or", "but", "nor", "plus", "also", "then", "so", "yet"})
# A date written in figures ("01/04/27", "1.4.2027").
_DATE = re.compile(r"\b\d{1,2}[/.-]\d{1,2}(?:[/.-]\d{2,4})?\b")


def _speaks_of_a_nominee(line: str, signer: Signer | None) -> bool:
    """Does a line that reads as a title or an organisation speak of someone the request
    names ("Jane Quit", "Jane Smith Locum")? Their full name, or a word of it in a comma
    part that does not end in an organisation's or an address's word: "Victoria Medical
    Centre" and "12 Park Road" are places, whoever is named Victoria or Park, but in "With
    Bob Practice Manager" the organisation's word is a post's, and the line speaks of Bob."""
    if signer is None or not signer.others:
        return False
    nominees = signer.others - set(signer.name_words())
    if len(_named(line, nominees)) >= 2:
        return True
    parts = POSTCODE.sub(" ", _without_days(line)).split(",")
    return any(_named(part, nominees) and not _names_a_place(part) for part in parts)


def _named(text: str, nominees: frozenset[str]) -> list[str]:
    """The words of the text that are words of a nominee's name ("Jane's" is "jane")."""
    return [w for w in (w.removesuffix("'s") for w in _words(text)) if w in nominees]


def _names_a_place(part: str) -> bool:
    """The part ends in an organisation's or an address's word ("Bob Lane Surgery")."""
    words = _words(part)
    return bool(words) and words[-1] in _ORGANISATION_OR_ADDRESS


# Words of job titles, organisations and addresses: beside one, a word of a nominee's name
# is a place's ("Victoria Medical Centre", "12 Park Road").
_PLACE_WORDS = frozenset(
    WORD.findall(
        """
        gp gps partner partners senior salaried principal locum doctor doctors physician
        clinician clinical medical medicine nurse nursing practitioner pharmacist pharmacy
        optometrist optometry optician opticians ophthalmic dentist dental paramedic
        practice practices surgery surgeries centre center clinic health healthcare care
        hospital trust nhs icb icbs board integrated commissioning network pcn pcns primary
        community group federation alliance services service team unit department office
        manager managers management director directors lead head chief executive officer
        deputy assistant associate administrator administration admin coordinator
        supervisor secretary receptionist registrar guardian governance finance business
        operations contracts contracting payments workforce digital quality safety estates
        programme project support specialist consultant chair university partnership ccg
        foundation institute college royal street road lane avenue drive close way place
        square court house park gardens crescent terrace hill grove walk row green mews
        parade building floor suite estate north south east west upper lower
        """
    )
)


def _inflected(words: frozenset[str]) -> frozenset[str]:
    """The words with the endings English verbs take ("exclude": "excluded", "excludes",
    "excluding"; "stop": "stopped"; "cancel": "cancelled"): a blocklist of bare forms
    would let "Jane Smith Excluded" through."""
    forms = set(words)
    for word in words:
        if len(word) < 3:
            continue
        stem = word[:-1] if word.endswith("e") else word
        doubled = word + word[-1] if word[-1] in "bdglmnprt" and word[-2] in "aeiou" else word
        forms |= {word + "s", word + "d", stem + "ed", stem + "ing", doubled + "ed"}
        forms |= {doubled + "ing", stem + "ion", stem + "ions"}
    return frozenset(forms)


# Words that void, recall or question a message, or say someone else wrote it: after an
# approval, a line holding one is no part of a signature ("Rescinded", "Null And Void",
# "Typed By Reception", "On Behalf Of Dr Smith", "Account Hacked").
_VOIDING = frozenset(
    WORD.findall(
        """
        rescind void null nil hack hacked hacker phishing phish spam spoof recalled revoke
        deceased dead suspend struck behalf pp typed dictate unsigned withdraw withdrawn
        withdrew retract invalid invalidate unauthorised unauthorized compromise disregard
        pending provisional provisionally conditional conditionally subject supersede
        overrule overridden veto object objection concern query to by per via reluctantly
        reluctant grudgingly hesitantly unwillingly duress coerce pressure pressured abstain
        disagree disagrees dislike dislikes distrust distrusts oppose opposes ran
        disapprove disapproving unapproved misclick nullify nullified annul annulled
        reverse undo revert unconvinced undecided unsure sceptical skeptical forge forged
        impersonate impersonated overturn incorrect demote revocation removal withdrawal
        cancellation exclusion suspension addition replacement amendment refusal held
        unsuitable unregistered banned sack sacked disciplinary prefer better instead
        require requires required need needs needed confirm discuss proceed zero make
        ddim dim na nac peidiwch gwrthod aros canslo heb anghytuno tynnu
        """
    )
)
# "Recall Coordinator" and "Medical Typist" are posts: those words stay off the list.
_NOT_AN_ANSWERS_CLOSING = _inflected(_INSTRUCTIONS | _VOIDING)


# Further words of posts and organisations, beyond _PLACE_WORDS: a line of capitalised words
# that ends in one of them (_HEADS) is a title.
_POSTS = frozenset(
    WORD.findall(
        """
        council borough county city district region regional national uk ltd limited plc
        llp llc company co inc cic charity society association partnership practice
        caldicott therapist physiotherapist physio midwife midwifery dietitian podiatrist
        counsellor matron sister technician apprentice trainee clerk accountant controller
        engineer adviser advisor analyst navigator champion representative liaison officer
        general commissioner commissioning medicines optical optometrists opticians
        pharmacies pharmacists chemist chemists dispensary dispensing laboratory lab
        pathology radiology mental wellbeing wellness rehabilitation therapy therapies
        surgeon surgeons paediatric paediatrics geriatric gp's ward wards division
        directorate hub hubs system systems information informatics it ict data records
        reception administrator administrative coordinator patient patients services
        professional professionals allied personal private independent contractor
        contractors mbbs mrcgp frcgp worker workers social prescribing link wellbeing
        medics suite box summariser typist recall government dispenser dispensers
        market optometrydd leader leaders trainer coach facilitator committee owner
        examiner prescriber visitor riding siro phlebotomist coder student volunteer
        hygienist treasurer secretariat clerical
        rheolwr practis meddyg meddygfa canolfan iechyd ysbyty bwrdd nyrs fferyllfa
        fferyllydd gweinyddwr cyfarwyddwr swyddog partneriaeth gofal sylfaenol clwstwr
        """
    )
)


# Counties, regions and nations that end an organisation's name ("NHS England – North East
# and Yorkshire", "NHS Cheshire and Merseyside").
_AREAS = frozenset(
    WORD.findall(
        """
        england wales scotland cymru britain yorkshire lancashire merseyside cumbria
        cheshire humber lincolnshire derbyshire nottinghamshire leicestershire rutland
        staffordshire shropshire warwickshire worcestershire herefordshire gloucestershire
        oxfordshire buckinghamshire berkshire hampshire wiltshire somerset dorset devon
        cornwall kent surrey sussex essex suffolk norfolk cambridgeshire hertfordshire
        bedfordshire northamptonshire northumberland durham cleveland teesside tyneside
        midlands london manchester birmingham bristol wight
        """
    )
)
# "Lead for Long Term Conditions": the team's name, which replies.hesitation reads whole.
_HEADS = _PLACE_WORDS | _POSTS | _AREAS | {"conditions"}
_FIRST_HEADS = frozenset(
    WORD.findall(
        """
        canolfan meddygfa meddygfa'r ysbyty bwrdd fferyllfa practis partneriaeth
        clwstwr llywodraeth uwch rheolwr swyddog cyfarwyddwr meddyg stryd heol ffordd
        """
    )
)


# Words of organisations and addresses: in a comma part that ends in one, a word of a
# nominee's name is a place's ("Victoria Medical Centre", "12 Park Road"); in one that ends
# in a post's it is the nominee ("Jane Locum", "With Bob Practice Manager").
_ORGANISATION_OR_ADDRESS = frozenset(
    WORD.findall(
        """
        practice practices surgery surgeries centre center clinic health healthcare care
        hospital trust nhs icb icbs board integrated commissioning network pcn pcns
        primary community group federation alliance services service unit department
        office pharmacy opticians optical university partnership ccg foundation institute
        college royal street road lane avenue drive close way place square court house
        park gardens crescent terrace hill grove walk row green mews parade building floor
        suite estate ltd limited plc llp council
        """
    )
)


def _instructs(text: str) -> bool:
    return any(w in _NOT_AN_ANSWERS_CLOSING for w in _words(text))
