"""Identifying values in every form a hostile (or careless) delivery could hold them, for the
tests of the detectors (test_pii.py) and of the ingest path (planted in files, then searched for
in the database and everything written).

Every value is fake: reserved domains (example.org/.net/.com), documentation address ranges
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), card issuers' test numbers,
IBANs and ids from the standards' and validators' own examples, numbers from ranges kept for
drama and fiction where a country has one (UK 07700 900xxx and 020 7946 0xxx, US 555-01xx,
DE 030 23125xxx, AU 0491 570 xxx), invented names and handles. Each is distinctive enough to
be searched for as a substring of a database dump or a file (8 characters or more, in no
ordinary text).
"""

from __future__ import annotations

#: (kind, value): the kind is what pii.detect() must find in the value (it may find more)
CORPUS: list[tuple[str, str]] = [
    ("email", "jane.doe@example.org"),
    ("email", "parent.report@mail.example.com"),
    ("email", "kid_2009@example.net"),
    ("email", "jane.doe [at] example [dot] org"),
    ("url", "https://chat.example.net/room/42"),
    ("url", "http://192.0.2.10/upload"),
    ("url", "www.example.org/profile/lily"),
    ("url", "ftp://files.example.com/dump.zip"),
    ("domain", "kidsgamehub.example.org"),
    ("domain", "darkroom.example.net"),
    ("domain", "lily-cams[.]example[.]com"),
    ("handle", "@darkfox_99"),
    ("handle", "snapchat: lily_rose09"),
    ("handle", "Instagram @test.user.2009"),
    ("handle", "discord shadowcat#1234"),
    ("handle", "kik: testkid_2010"),
    ("handle", "TikTok: sunny.days.example"),
    ("ip_address", "192.0.2.146"),
    ("ip_address", "198.51.100.23"),
    ("ip_address", "203.0.113.77"),
    ("ip_address", "2001:db8:85a3::8a2e:370:7334"),
    ("ip_address", "2001:0db8:0000:0000:0000:ff00:0042:8329"),
    ("ip_address", "::ffff:192.0.2.128"),
    ("payment_card", "4111 1111 1111 1111"),
    ("payment_card", "5500-0000-0000-0004"),
    ("payment_card", "378282246310005"),
    ("payment_card", "6011111111111117"),
    ("payment_card", "4012 8888 8888 1881"),
    ("payment_card", "16-17 5500 0000 0000 0004"),  # an age band, then the card
    ("phone", "+44 7700 900123"),
    ("phone", "+44 20 7946 0018"),
    ("phone", "020 7946 0018"),
    ("phone", "02079460018"),
    ("phone", "0044 20 7946 0018"),
    ("phone", "(202) 555-0143"),
    ("phone", "+1 202 555 0143"),
    ("phone", "+12025550143"),
    ("phone", "+49 30 23125000"),
    ("phone", "030 23125000"),
    ("phone", "0612 345 678"),
    ("phone", "+31 6 12345678"),
    ("phone", "01.99.00.12.34"),
    ("phone", "+33 1 99 00 12 34"),
    ("phone", "+91 98765 43210"),
    ("phone", "+55 11 91234-5678"),
    ("phone", "0491 570 156"),
    ("phone", "+61 491 570 156"),
    ("phone", "+34 612 345 678"),
    ("phone", "+39 06 1234 5678"),
    ("iban", "GB82WEST12345698765432"),
    ("iban", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "FR1420041010050500013M02606"),
    ("iban", "NL91ABNA0417164300"),
    ("national_id", "123-45-6789"),            # US SSN
    ("national_id", "AB 12 34 56 C"),          # UK National Insurance number
    ("national_id", "2 95 10 99 126 111 93"),  # French NIR
    ("national_id", "12345678Z"),              # Spanish DNI
    ("national_id", "X1234567L"),              # Spanish NIE
    ("national_id", "RSSMRA85T10A562S"),       # Italian codice fiscale
    ("national_id", "111.444.777-35"),         # Brazilian CPF
    ("national_id", "2341 2341 2346"),         # Indian Aadhaar
    ("national_id", "36 574 261 809"),         # German Steuer-ID
    ("national_id", "880320-0016"),            # Swedish personnummer
    ("national_id", "131052-308T"),            # Finnish HETU
    ("national_id", "BSN 111222333"),          # Dutch BSN, named
    ("national_id", "passport no. 123456789"),
    ("crypto_wallet", "1A9Mb9uGHcvVmopMCYJcT6d24XG5UZXHVK"),
    ("crypto_wallet", "3A4bhwidjEUGjdUi3K7eJNkNvQkAAhcZha"),
    ("crypto_wallet", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
    ("crypto_wallet", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"),
    ("crypto_wallet", "0x000000000000000000000000000000000000dEaD"),
    ("street_address", "221B Baker Street"),
    ("street_address", "742 Evergreen Terrace"),
    ("street_address", "Musterstraße 12"),
    ("street_address", "Calle Falsa 123"),
    ("street_address", "12 rue de l'Exemple"),
    ("street_address", "Kalverstraat 92"),
    ("postcode", "SW1A 1AA"),
    ("postcode", "EC1A 1BB"),
    ("postcode", "Ottawa ON K1A 0B1"),
    ("postcode", "90210-1234"),
    ("date_of_birth", "DOB 12/04/2009"),
    ("date_of_birth", "born 03.07.2010"),
    ("date_of_birth", "date of birth: 2009-04-12"),
    ("date_of_birth", "12/04/2009"),
    ("date_of_birth", "Geburtsdatum 01.02.2011"),
    ("person_name", "Emily Johnson"),
    ("person_name", "JOHNSON, Emily"),
    ("person_name", "Oliver Brandt"),
    ("person_name", "Amelia Hartley"),
    ("person_name", "Liam Okafor"),
    ("person_name", "Hannah Schmidt"),
    ("formula", '=HYPERLINK("http://evil.example/x","click")'),
    ("formula", "=1+2*3+A1"),
    ("formula", "+SUM(A1:A9)"),
    ("formula", "-cmd|' /C calc'!A0"),
    ("formula", "@SUM(A1:A9)"),
    ("formula", "\t=IMPORTXML(A1,B1)"),
]

_TEMPLATES = ("see {} now", "Contact: {}.", "notes ({}) end", "{}, then nothing else")

#: (kind, text): each value but the formulas (a formula only runs from a cell's start) inside
#: other text
EMBEDDED: list[tuple[str, str]] = [
    (kind, _TEMPLATES[i % len(_TEMPLATES)].format(value))
    for i, (kind, value) in enumerate((k, v) for k, v in CORPUS if k != "formula")
]

#: what deliveries are made of: none of it may be taken for identifying data
ORDINARY: list[str] = [
    # case ids
    "HL-2021-0000123", "HL-P-12", "CASE_000123", "c0a8012e-7f3b-4b8e-9d1a-2f6c3e4b5a69",
    "A1B2C3D4", "HL-2020-0001234",
    # ISO times, dates, months, years
    "2021-05-01T10:00:00Z", "2021-05-01 10:00:00+02:00", "2021-05-01T10:00:00.123456+00:00",
    "2020-03-14T09:12:00Z", "2020-03-15 10:00", "2021-05-01", "2021-03", "2020-03", "2020",
    # counts
    "21669264", "21,669,264", "1500000", "16,987,361", "123456789012",
    # age bands
    "16-17", "0-2", "11-13",
    # labels
    "Member of the public", "Live video / webcam", "Online enticement;Sextortion",
    "Social media", "Parent or caregiver", "Law enforcement", "Unknown",
    "Child or young person", "Post-abuse maintenance",
    "Online Enticement of Children for Sexual Acts",
    # country codes
    "DE", "GB", "ZZ",
    # file names
    "sample_hotline_cases_2023-03.csv", "ncmec_cybertipline_2019_2022.csv", "cases.xlsx",
    # headers
    "Case ID", "Received", "Victim age band", "Highest grooming stage", "Exploitation types",
    "Referred to", "Online Enticement", "Reports", "Incident type", "Year",
    # sheet names
    "Sheet1", "Cases 2023",
]
