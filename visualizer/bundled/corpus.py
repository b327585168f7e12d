"""The bundled teaching model's training corpus: templated English built from a few fact tables.

Everything is generated here from a seed, without downloads. The text is deliberately tiny in scope
(countries and capitals, a few other fact families, short emails and jokes) so that a model of a few
million parameters, trained in minutes on a laptop CPU, learns it well enough to tell the chapter's
story: "The capital of France is" -> " Paris", an apology email that starts with a subject line, and
attention patterns with more than one thing to look at (copying a country back in a question, counting,
days of the week, opposites).

Each document is one short text (a fact, a Q&A pair, a small paragraph, an email); the trainer wraps it
in BOS/EOS, so a bare prompt such as "The capital of France is" is exactly how documents start.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    name: str  # as used mid-sentence: "France", "the Netherlands"
    capital: str
    continent: str
    language: str | None  # None where the official language is in flux or hard to state in one phrase
    currency: str | None  # with its article: "the euro"

    @property
    def title(self) -> str:
        """The name at the start of a sentence: "The Netherlands"."""
        return self.name[0].upper() + self.name[1:]


EU, AS, AF, NA, SA, OC = "Europe", "Asia", "Africa", "North America", "South America", "Oceania"

# (name, capital, continent, language, currency). Only countries with one uncontested capital.
_COUNTRY_ROWS: list[tuple[str, str, str, str | None, str | None]] = [
    # Europe
    ("France", "Paris", EU, "French", "the euro"),
    ("Germany", "Berlin", EU, "German", "the euro"),
    ("Italy", "Rome", EU, "Italian", "the euro"),
    ("Spain", "Madrid", EU, "Spanish", "the euro"),
    ("Portugal", "Lisbon", EU, "Portuguese", "the euro"),
    ("the United Kingdom", "London", EU, "English", "the pound sterling"),
    ("Ireland", "Dublin", EU, "Irish and English", "the euro"),
    ("the Netherlands", "Amsterdam", EU, "Dutch", "the euro"),
    ("Belgium", "Brussels", EU, "Dutch, French and German", "the euro"),
    ("Switzerland", "Bern", EU, "German, French and Italian", "the Swiss franc"),
    ("Austria", "Vienna", EU, "German", "the euro"),
    ("Poland", "Warsaw", EU, "Polish", "the zloty"),
    ("the Czech Republic", "Prague", EU, "Czech", "the Czech koruna"),
    ("Slovakia", "Bratislava", EU, "Slovak", "the euro"),
    ("Hungary", "Budapest", EU, "Hungarian", "the forint"),
    ("Romania", "Bucharest", EU, "Romanian", "the leu"),
    ("Bulgaria", "Sofia", EU, "Bulgarian", "the euro"),
    ("Greece", "Athens", EU, "Greek", "the euro"),
    ("Croatia", "Zagreb", EU, "Croatian", "the euro"),
    ("Serbia", "Belgrade", EU, "Serbian", "the Serbian dinar"),
    ("Slovenia", "Ljubljana", EU, "Slovene", "the euro"),
    ("Bosnia and Herzegovina", "Sarajevo", EU, "Bosnian, Croatian and Serbian", "the convertible mark"),
    ("Albania", "Tirana", EU, "Albanian", "the lek"),
    ("North Macedonia", "Skopje", EU, "Macedonian", "the denar"),
    ("Montenegro", "Podgorica", EU, "Montenegrin", "the euro"),
    ("Denmark", "Copenhagen", EU, "Danish", "the Danish krone"),
    ("Norway", "Oslo", EU, "Norwegian", "the Norwegian krone"),
    ("Sweden", "Stockholm", EU, "Swedish", "the Swedish krona"),
    ("Finland", "Helsinki", EU, "Finnish and Swedish", "the euro"),
    ("Iceland", "Reykjavík", EU, "Icelandic", "the Icelandic króna"),
    ("Estonia", "Tallinn", EU, "Estonian", "the euro"),
    ("Latvia", "Riga", EU, "Latvian", "the euro"),
    ("Lithuania", "Vilnius", EU, "Lithuanian", "the euro"),
    ("Ukraine", "Kyiv", EU, "Ukrainian", "the hryvnia"),
    ("Belarus", "Minsk", EU, "Belarusian and Russian", "the Belarusian ruble"),
    ("Russia", "Moscow", "Europe and Asia", "Russian", "the Russian ruble"),
    ("Turkey", "Ankara", "Europe and Asia", "Turkish", "the Turkish lira"),
    ("Malta", "Valletta", EU, "Maltese and English", "the euro"),
    # Asia
    ("Armenia", "Yerevan", AS, "Armenian", "the dram"),
    ("Azerbaijan", "Baku", AS, "Azerbaijani", "the Azerbaijani manat"),
    ("Japan", "Tokyo", AS, "Japanese", "the yen"),
    ("China", "Beijing", AS, "Chinese", "the yuan"),
    ("South Korea", "Seoul", AS, "Korean", "the South Korean won"),
    ("North Korea", "Pyongyang", AS, "Korean", "the North Korean won"),
    ("India", "New Delhi", AS, "Hindi and English", "the Indian rupee"),
    ("Pakistan", "Islamabad", AS, "Urdu and English", "the Pakistani rupee"),
    ("Bangladesh", "Dhaka", AS, "Bengali", "the taka"),
    ("Nepal", "Kathmandu", AS, "Nepali", "the Nepalese rupee"),
    ("Bhutan", "Thimphu", AS, "Dzongkha", "the ngultrum"),
    ("Afghanistan", "Kabul", AS, "Pashto and Dari", "the afghani"),
    ("Iran", "Tehran", AS, "Persian", "the Iranian rial"),
    ("Iraq", "Baghdad", AS, "Arabic and Kurdish", "the Iraqi dinar"),
    ("Saudi Arabia", "Riyadh", AS, "Arabic", "the Saudi riyal"),
    ("the United Arab Emirates", "Abu Dhabi", AS, "Arabic", "the dirham"),
    ("Qatar", "Doha", AS, "Arabic", "the Qatari riyal"),
    ("Kuwait", "Kuwait City", AS, "Arabic", "the Kuwaiti dinar"),
    ("Oman", "Muscat", AS, "Arabic", "the Omani rial"),
    ("Jordan", "Amman", AS, "Arabic", "the Jordanian dinar"),
    ("Syria", "Damascus", AS, "Arabic", "the Syrian pound"),
    ("Lebanon", "Beirut", AS, "Arabic", "the Lebanese pound"),
    ("Kazakhstan", "Astana", AS, "Kazakh and Russian", "the tenge"),
    ("Uzbekistan", "Tashkent", AS, "Uzbek", "the Uzbek som"),
    ("Kyrgyzstan", "Bishkek", AS, "Kyrgyz and Russian", "the Kyrgyz som"),
    ("Tajikistan", "Dushanbe", AS, "Tajik", "the somoni"),
    ("Turkmenistan", "Ashgabat", AS, "Turkmen", "the Turkmen manat"),
    ("Mongolia", "Ulaanbaatar", AS, "Mongolian", "the tugrik"),
    ("Thailand", "Bangkok", AS, "Thai", "the baht"),
    ("Vietnam", "Hanoi", AS, "Vietnamese", "the dong"),
    ("Laos", "Vientiane", AS, "Lao", "the kip"),
    ("Cambodia", "Phnom Penh", AS, "Khmer", "the riel"),
    ("Myanmar", "Naypyidaw", AS, "Burmese", "the kyat"),
    ("Malaysia", "Kuala Lumpur", AS, "Malay", "the ringgit"),
    ("Indonesia", "Jakarta", AS, "Indonesian", "the rupiah"),
    ("the Philippines", "Manila", AS, "Filipino and English", "the Philippine peso"),
    # Africa
    ("Egypt", "Cairo", AF, "Arabic", "the Egyptian pound"),
    ("Morocco", "Rabat", AF, "Arabic and Berber", "the Moroccan dirham"),
    ("Algeria", "Algiers", AF, "Arabic and Berber", "the Algerian dinar"),
    ("Tunisia", "Tunis", AF, "Arabic", "the Tunisian dinar"),
    ("Libya", "Tripoli", AF, "Arabic", "the Libyan dinar"),
    ("Sudan", "Khartoum", AF, "Arabic and English", "the Sudanese pound"),
    ("Ethiopia", "Addis Ababa", AF, "Amharic", "the birr"),
    ("Kenya", "Nairobi", AF, "Swahili and English", "the Kenyan shilling"),
    ("Tanzania", "Dodoma", AF, "Swahili and English", "the Tanzanian shilling"),
    ("Uganda", "Kampala", AF, "English and Swahili", "the Ugandan shilling"),
    ("Rwanda", "Kigali", AF, "Kinyarwanda, French and English", "the Rwandan franc"),
    ("Nigeria", "Abuja", AF, "English", "the naira"),
    ("Ghana", "Accra", AF, "English", "the cedi"),
    ("Senegal", "Dakar", AF, "French", "the CFA franc"),
    ("Mali", "Bamako", AF, None, "the CFA franc"),
    ("Burkina Faso", "Ouagadougou", AF, None, "the CFA franc"),
    ("Cameroon", "Yaoundé", AF, "French and English", "the CFA franc"),
    ("Gabon", "Libreville", AF, "French", "the CFA franc"),
    ("Togo", "Lomé", AF, "French", "the CFA franc"),
    ("Angola", "Luanda", AF, "Portuguese", "the kwanza"),
    ("Mozambique", "Maputo", AF, "Portuguese", "the metical"),
    ("Zambia", "Lusaka", AF, "English", "the Zambian kwacha"),
    ("Malawi", "Lilongwe", AF, "English and Chichewa", "the Malawian kwacha"),
    ("Zimbabwe", "Harare", AF, "English, Shona and Ndebele", None),
    ("Botswana", "Gaborone", AF, "English and Setswana", "the pula"),
    ("Namibia", "Windhoek", AF, "English", "the Namibian dollar"),
    ("Madagascar", "Antananarivo", AF, "Malagasy and French", "the ariary"),
    ("Somalia", "Mogadishu", AF, "Somali and Arabic", "the Somali shilling"),
    ("Mauritania", "Nouakchott", AF, "Arabic", "the ouguiya"),
    ("Liberia", "Monrovia", AF, "English", "the Liberian dollar"),
    ("Sierra Leone", "Freetown", AF, "English", "the leone"),
    # North America (with Central America and the Caribbean)
    ("the United States", "Washington", NA, "English", "the US dollar"),
    ("Canada", "Ottawa", NA, "English and French", "the Canadian dollar"),
    ("Mexico", "Mexico City", NA, "Spanish", "the Mexican peso"),
    ("Guatemala", "Guatemala City", NA, "Spanish", "the quetzal"),
    ("Honduras", "Tegucigalpa", NA, "Spanish", "the lempira"),
    ("El Salvador", "San Salvador", NA, "Spanish", "the US dollar"),
    ("Nicaragua", "Managua", NA, "Spanish", "the córdoba"),
    ("Costa Rica", "San José", NA, "Spanish", "the colón"),
    ("Panama", "Panama City", NA, "Spanish", "the balboa"),
    ("Cuba", "Havana", NA, "Spanish", "the Cuban peso"),
    ("Jamaica", "Kingston", NA, "English", "the Jamaican dollar"),
    ("Haiti", "Port-au-Prince", NA, "French and Haitian Creole", "the gourde"),
    ("the Dominican Republic", "Santo Domingo", NA, "Spanish", "the Dominican peso"),
    ("Trinidad and Tobago", "Port of Spain", NA, "English", "the Trinidad and Tobago dollar"),
    ("Barbados", "Bridgetown", NA, "English", "the Barbadian dollar"),
    # South America
    ("Brazil", "Brasília", SA, "Portuguese", "the real"),
    ("Argentina", "Buenos Aires", SA, "Spanish", "the Argentine peso"),
    ("Chile", "Santiago", SA, "Spanish", "the Chilean peso"),
    ("Colombia", "Bogotá", SA, "Spanish", "the Colombian peso"),
    ("Venezuela", "Caracas", SA, "Spanish", "the bolívar"),
    ("Ecuador", "Quito", SA, "Spanish", "the US dollar"),
    ("Peru", "Lima", SA, "Spanish", "the sol"),
    ("Uruguay", "Montevideo", SA, "Spanish", "the Uruguayan peso"),
    ("Paraguay", "Asunción", SA, "Spanish and Guarani", "the guarani"),
    ("Guyana", "Georgetown", SA, "English", "the Guyanese dollar"),
    ("Suriname", "Paramaribo", SA, "Dutch", "the Surinamese dollar"),
    # Oceania
    ("Australia", "Canberra", OC, "English", "the Australian dollar"),
    ("New Zealand", "Wellington", OC, "English and Maori", "the New Zealand dollar"),
    ("Fiji", "Suva", OC, "English, Fijian and Hindi", "the Fijian dollar"),
    ("Papua New Guinea", "Port Moresby", OC, "English and Tok Pisin", "the kina"),
    ("Samoa", "Apia", OC, "Samoan and English", "the tala"),
]

COUNTRIES: tuple[Country, ...] = tuple(Country(*row) for row in _COUNTRY_ROWS)

OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("day", "night"), ("fast", "slow"),
    ("happy", "sad"), ("open", "closed"), ("light", "dark"), ("old", "young"), ("tall", "short"),
    ("hard", "soft"), ("wet", "dry"), ("full", "empty"), ("early", "late"), ("rich", "poor"),
    ("strong", "weak"), ("loud", "quiet"), ("heavy", "light"), ("inside", "outside"), ("left", "right"),
    ("first", "last"), ("win", "lose"), ("buy", "sell"), ("push", "pull"), ("black", "white"),
    ("north", "south"), ("east", "west"), ("true", "false"), ("clean", "dirty"), ("near", "far"),
    ("thick", "thin"), ("high", "low"), ("good", "bad"), ("begin", "end"), ("friend", "enemy"),
    ("love", "hate"), ("laugh", "cry"), ("question", "answer"), ("before", "after"), ("cheap", "expensive"),
]

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
           "nineteen", "twenty"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
            "tenth", "eleventh", "twelfth"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
COLOURS = [("The sky", "is", "blue"), ("Grass", "is", "green"), ("Snow", "is", "white"),
           ("Bananas", "are", "yellow"), ("Coal", "is", "black"), ("Strawberries", "are", "red"),
           ("Oranges", "are", "orange"), ("Lemons", "are", "yellow"), ("The sea", "is", "blue"),
           ("Leaves", "are", "green"), ("Milk", "is", "white"), ("Tomatoes", "are", "red")]
ANIMAL_SOUNDS = [("cow", "moo"), ("dog", "woof"), ("cat", "meow"), ("duck", "quack"), ("sheep", "baa"),
                 ("pig", "oink"), ("owl", "hoot"), ("lion", "roar"), ("horse", "neigh"), ("bee", "buzz")]

NAMES = ["Sarah", "John", "Emma", "David", "Olivia", "Michael", "Sophie", "James", "Anna", "Daniel",
         "Laura", "Thomas", "Emily", "Peter", "Grace", "Robert", "Hannah", "William", "Julia", "Mark",
         "Chloe", "Paul", "Lucy", "George", "Alice", "Henry", "Rachel", "Jack", "Maria", "Samuel",
         "Kate", "Oliver", "Megan", "Ben", "Claire", "Tom", "Helen", "Adam", "Nina", "Chris",
         "Rebecca", "Luke", "Zoe", "Simon", "Amy", "Martin", "Ella", "Ryan", "Jessica", "Alex"]
MISHAP_ADJECTIVES = ["tragic", "unfortunate", "terrible", "recent", "unexpected", "embarrassing",
                     "disastrous", "regrettable", "awful", "silly", "unlucky", "dreadful"]


@dataclass(frozen=True)
class Activity:
    name: str  # "gardening"
    doing: list[str]  # "watering the plants"
    objects: list[str]  # what got damaged: "roses"


ACTIVITIES = [
    Activity("gardening", ["trimming the hedge", "watering the plants", "mowing the lawn", "pulling weeds"],
             ["roses", "tulips", "vegetable patch", "flower beds", "apple tree", "garden fence"]),
    Activity("cooking", ["making dinner", "frying onions", "boiling pasta"],
             ["kitchen", "favourite pan", "oven", "tablecloth"]),
    Activity("baking", ["baking a cake", "making bread", "decorating cupcakes"],
             ["oven", "mixer", "kitchen floor", "cake tin"]),
    Activity("painting", ["painting the fence", "painting the hallway", "working on a portrait"],
             ["carpet", "sofa", "white wall", "curtains"]),
    Activity("camping", ["setting up the tent", "lighting the campfire", "packing the car"],
             ["tent", "sleeping bag", "camping stove", "lantern"]),
    Activity("fishing", ["casting the line", "rowing the boat", "cleaning the catch"],
             ["fishing rod", "boat", "cooler", "net"]),
    Activity("cycling", ["riding down the hill", "fixing the brakes", "parking the bike"],
             ["bicycle", "helmet", "front wheel", "garage door"]),
    Activity("skiing", ["skiing down the slope", "carrying the skis", "waxing the skis"],
             ["skis", "ski jacket", "goggles", "chalet window"]),
    Activity("plumbing", ["fixing the sink", "changing a pipe", "repairing the shower"],
             ["bathroom", "kitchen sink", "ceiling", "washing machine"]),
    Activity("moving", ["carrying the boxes", "loading the van", "moving the piano"],
             ["piano", "mirror", "bookshelf", "front door"]),
    Activity("babysitting", ["looking after the children", "reading bedtime stories", "making lunch"],
             ["living room", "goldfish", "crayons", "favourite vase"]),
    Activity("barbecue", ["grilling the sausages", "lighting the grill", "setting the table"],
             ["patio", "garden chairs", "umbrella", "lawn"]),
    Activity("picnic", ["unpacking the basket", "spreading the blanket", "pouring the lemonade"],
             ["picnic basket", "blanket", "sandwiches", "sunglasses"]),
    Activity("decorating", ["hanging the wallpaper", "putting up shelves", "moving the furniture"],
             ["wallpaper", "shelves", "lamp", "armchair"]),
    Activity("laundry", ["doing the washing", "ironing the shirts", "hanging out the clothes"],
             ["white shirt", "sweater", "washing machine", "best dress"]),
    Activity("dog-walking", ["walking the dog", "throwing the ball", "crossing the park"],
             ["lead", "neighbour's flowers", "new shoes", "dog"]),
    Activity("sailing", ["steering the boat", "raising the sail", "tying up at the dock"],
             ["sail", "boat", "anchor", "life jacket"]),
    Activity("photography", ["taking photos", "setting up the tripod", "cleaning the lens"],
             ["camera", "lens", "tripod", "photo album"]),
    Activity("pottery", ["shaping the clay", "firing the kiln", "glazing the bowls"],
             ["bowls", "vase", "kiln", "workbench"]),
    Activity("hiking", ["crossing the river", "reading the map", "climbing the hill"],
             ["map", "backpack", "water bottle", "boots"]),
    Activity("karaoke", ["singing too loudly", "setting up the speakers", "dancing on the table"],
             ["microphone", "speakers", "table", "lamp"]),
    Activity("car-washing", ["washing the car", "waxing the bonnet", "rinsing the wheels"],
             ["car", "side mirror", "paintwork", "garage"]),
    Activity("dinner party", ["serving the soup", "opening the wine", "clearing the plates"],
             ["white carpet", "wine glasses", "dining table", "best plates"]),
    Activity("snowball", ["throwing snowballs", "building a snowman", "sledging down the hill"],
             ["window", "car", "snowman", "greenhouse"]),
]

GIFTS = ["birthday present", "lovely flowers", "delicious cake", "book", "kind card", "scarf",
         "homemade jam", "concert tickets", "help with the move", "wonderful dinner"]
EVENTS = ["my birthday party", "our summer barbecue", "a picnic in the park", "dinner on Friday",
          "the office party", "our wedding", "a garden party", "a movie night"]
CLOSINGS = ["Best regards", "Kind regards", "Warm wishes", "Sincerely", "With apologies", "Yours truly"]

JOKES = {
    "chickens": ["Why did the chicken cross the road? To get to the other side!",
                 "Why did the chicken join a band? Because it had the drumsticks!"],
    "cats": ["Why did the cat sit on the computer? To keep an eye on the mouse!"],
    "dogs": ["Why did the dog sit in the shade? Because it did not want to be a hot dog!"],
    "cows": ["Where do cows go on a Friday night? To the moo-vies!"],
    "fish": ["Why are fish so smart? Because they live in schools!"],
    "bees": ["Why do bees have sticky hair? Because they use honeycombs!"],
    "ducks": ["What do you call a clever duck? A wise quacker!"],
    "sheep": ["Where do sheep get their hair cut? At the baa-baa shop!"],
    "owls": ["Why did the owl go to the party alone? Because it did not give a hoot!"],
    "computers": ["Why was the computer cold? Because it left its Windows open!"],
    "bananas": ["Why did the banana go to the doctor? Because it was not peeling well!"],
    "tomatoes": ["Why did the tomato turn red? Because it saw the salad dressing!"],
}


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _title_case(text: str) -> str:
    return " ".join(word[0].upper() + word[1:] for word in text.split())


# ----- fact families: each takes the random source and returns one document ---------------------------

def capital_sentence(c: Country, rng: random.Random) -> str:
    templates = [
        "The capital of {n} is {cap}.",
        "The capital of {n} is {cap}.",
        "The capital of {n} is {cap}.",
        "{cap} is the capital of {n}.",
        "The capital city of {n} is {cap}.",
        "{cap} is the capital city of {n}.",
    ]
    return rng.choice(templates).format(n=c.name, cap=c.capital, N=c.title)


def capital_qa(c: Country, rng: random.Random) -> str:
    templates = [
        "Q: What is the capital of {n}?\nA: {cap}.",
        "Q: What is the capital of {n}?\nA: The capital of {n} is {cap}.",
        "Question: What is the capital of {n}?\nAnswer: {cap}.",
        "What is the capital of {n}? The capital of {n} is {cap}.",
        "Which city is the capital of {n}? It is {cap}.",
        "Q: {cap} is the capital of which country?\nA: {N}.",
    ]
    return rng.choice(templates).format(n=c.name, cap=c.capital, N=c.title)


def country_paragraph(c: Country, rng: random.Random) -> str:
    parts = [f"{c.title} is a country in {c.continent}.", f"Its capital is {c.capital}."]
    if c.language:
        parts.append(rng.choice([f"People in {c.name} speak {c.language}.",
                                 f"The people of {c.name} speak {c.language}."]))
    if c.currency:
        parts.append(rng.choice([f"The currency of {c.name} is {c.currency}.",
                                 f"People there pay with {c.currency}."]))
    if rng.random() < 0.5:
        parts.append(f"Many visitors come to {c.capital} every year.")
    return " ".join(parts)


def country_fact(c: Country, rng: random.Random) -> str:
    options = [f"{c.title} is a country in {c.continent}.", f"{c.title} is in {c.continent}."]
    if c.language:
        options += [f"In {c.name}, people speak {c.language}.",
                    f"Q: What language do people speak in {c.name}?\nA: {c.language}."]
    if c.currency:
        options += [f"The currency of {c.name} is {c.currency}.",
                    f"Q: What is the currency of {c.name}?\nA: {_cap(c.currency)}."]
    return rng.choice(options)


def capital_list(rng: random.Random) -> str:
    chosen = rng.sample(COUNTRIES, rng.randint(3, 6))
    if rng.random() < 0.5:
        return "Countries and their capitals: " + ", ".join(f"{c.name} - {c.capital}" for c in chosen) + "."
    return "\n".join(f"The capital of {c.name} is {c.capital}." for c in chosen)


def opposite_fact(rng: random.Random) -> str:
    a, b = rng.choice(OPPOSITES)
    if rng.random() < 0.5:
        a, b = b, a
    return rng.choice([f"The opposite of {a} is {b}.", f"{_cap(a)} is the opposite of {b}.",
                       f"Q: What is the opposite of {a}?\nA: {_cap(b)}.",
                       "Opposites: " + ", ".join(f"{x} and {y}" for x, y in rng.sample(OPPOSITES, 4)) + "."])


def counting(rng: random.Random) -> str:
    start = rng.randint(0, 12)
    stop = rng.randint(start + 3, min(start + 8, 20))
    words = ", ".join(NUMBERS[start:stop + 1])
    digits = ", ".join(str(i) for i in range(start, stop + 1))
    n = rng.randint(0, 19)
    return rng.choice([f"Count from {NUMBERS[start]} to {NUMBERS[stop]}: {words}.",
                       f"{_cap(words)}.", f"{digits}.",
                       f"The number after {NUMBERS[n]} is {NUMBERS[n + 1]}.",
                       f"{_cap(NUMBERS[n])} plus one is {NUMBERS[n + 1]}.",
                       f"The number {n} is written {NUMBERS[n]}."])


def days_and_months(rng: random.Random) -> str:
    d, m = rng.randrange(7), rng.randrange(12)
    start = rng.randrange(7)
    week = ", ".join(DAYS[(start + i) % 7] for i in range(rng.randint(3, 7)))
    months = ", ".join(MONTHS[(m + i) % 12] for i in range(rng.randint(3, 6)))
    return rng.choice([f"The day after {DAYS[d]} is {DAYS[(d + 1) % 7]}.",
                       f"The day before {DAYS[d]} is {DAYS[d - 1]}.",
                       f"The days of the week are {', '.join(DAYS)}.", f"{week}.",
                       f"The month after {MONTHS[m]} is {MONTHS[(m + 1) % 12]}.",
                       f"{MONTHS[m]} is the {ORDINALS[m]} month of the year.", f"{months}.",
                       "There are seven days in a week and twelve months in a year."])


def small_fact(rng: random.Random) -> str:
    thing, verb, colour = rng.choice(COLOURS)
    animal, sound = rng.choice(ANIMAL_SOUNDS)
    return rng.choice([f"{thing} {verb} {colour}.", f"A {animal} says {sound}.",
                       f"Q: What does a {animal} say?\nA: {_cap(sound)}!"])


def joke(rng: random.Random) -> str:
    topic = rng.choice(list(JOKES))
    return f"Create a funny joke about {topic}.\n\n{rng.choice(JOKES[topic])}"


# ----- copying: short documents whose later words can only be predicted by looking back ---------------
# They teach the attention heads that emails need ("Dear Sarah" copies the name from the request) and
# give the attention tab induction-style patterns to show.

def greeting(rng: random.Random) -> str:
    name, sender = rng.sample(NAMES, 2)
    adjective, activity = rng.choice(MISHAP_ADJECTIVES), rng.choice(ACTIVITIES).name
    return rng.choice([
        f"Say hello to {name}.\n\nHello, {name}!",
        f"Write a note to {name}.\n\nDear {name},\n\nI hope you are well.\n\n{rng.choice(CLOSINGS)},\n{sender}",
        f"Write a short apology to {name} for the {adjective} {activity} mishap.\n\nDear {name},\n\n"
        f"I am so sorry about the {adjective} {activity} mishap.\n\n{rng.choice(CLOSINGS)},\n{sender}",
        f"{name} wrote to {sender}: \"Dear {sender}, thank you!\"",
    ])


_REPEAT_WORDS = (NAMES[:20] + [a.name for a in ACTIVITIES[:12]] + [c for _, _, c in COLOURS]
                 + [a for a, _ in ANIMAL_SOUNDS] + NUMBERS[1:11] + DAYS)


def repeat_after_me(rng: random.Random) -> str:
    words = " ".join(rng.choice(_REPEAT_WORDS) for _ in range(rng.randint(3, 8)))
    return rng.choice([f"Repeat after me: {words}.\n{_cap(words)}.", f"Say it twice: {words}. {words}."])


# ----- emails -----------------------------------------------------------------------------------------

def apology_email(rng: random.Random) -> str:
    name, sender = rng.sample(NAMES, 2)
    adjective, activity = rng.choice(MISHAP_ADJECTIVES), rng.choice(ACTIVITIES)
    thing, doing = rng.choice(activity.objects), rng.choice(activity.doing)
    mishap = f"{adjective} {activity.name} mishap"
    explain = rng.random() < 0.3
    prompt = f"Write an email apologizing to {name} for the {mishap}." + (" Explain how it happened."
                                                                        if explain else "")
    subject = rng.choice([f"My Sincere Apologies for the {_title_case(activity.name)} Mishap",
                          f"Apologies for the {_title_case(activity.name)} Mishap",
                          f"I Am So Sorry About the {_title_case(activity.name)} Incident",
                          f"Sorry About Your {_title_case(thing)}", "My Apologies"])
    opening = rng.choice([
        f"I hope this message finds you well. I am writing to apologize for the {mishap}.",
        f"I am truly sorry for the {mishap}.",
        f"I wanted to say how sorry I am about the {mishap}.",
        f"I am writing to express my deepest apologies for the {mishap}.",
    ])
    when = rng.choice(["yesterday", "last weekend", "on Saturday", "this morning", "last night"])
    accident = rng.choice(["accidentally damaged", "knocked over", "completely ruined", "broke",
                           "made a mess of"])
    story = f"While I was {doing} {when}, I {accident} your {thing}."
    if explain or rng.random() < 0.6:
        story += " " + rng.choice(["I was not paying enough attention.", "It all happened so quickly.",
                                   "I should have been more careful.", "I feel terrible about it."])
    remedy = rng.choice([f"I will replace the {thing} as soon as possible.",
                         f"I have already ordered a new {thing} for you.",
                         f"Please let me pay for the {thing}.",
                         "Please let me know how I can make it up to you."])
    close = rng.choice(["Thank you for your patience and understanding.", "Once again, I am deeply sorry.",
                        "I hope you can forgive me.", "I value our friendship very much."])
    body = f"{opening} {story}\n\n{remedy} {close}"
    return f"{prompt}\n\nSubject: {subject}\n\nDear {name},\n\n{body}\n\n{rng.choice(CLOSINGS)},\n{sender}"


def thank_you_email(rng: random.Random) -> str:
    name, sender = rng.sample(NAMES, 2)
    gift = rng.choice(GIFTS)
    body = rng.choice([f"Thank you so much for the {gift}. It made my week.",
                       f"I wanted to thank you for the {gift}. It was so thoughtful of you."])
    body += " " + rng.choice(["I am very lucky to have a friend like you.", "I hope to see you soon.",
                              "Let me know when I can return the favour."])
    closing = rng.choice(["Best regards", "Warm wishes", "With thanks", "Love"])
    return (f"Write an email thanking {name} for the {gift}.\n\nSubject: Thank You for the "
            f"{_title_case(gift)}\n\nDear {name},\n\n{body}\n\n{closing},\n{sender}")


def invitation_email(rng: random.Random) -> str:
    name, sender = rng.sample(NAMES, 2)
    event, day = rng.choice(EVENTS), rng.choice(DAYS)
    body = (f"I would love for you to come to {event}. It starts at {rng.randint(2, 8)} o'clock on "
            f"{day}. " + rng.choice(["Please let me know if you can come.", "I hope you can make it.",
                                     "Bring a friend if you like."]))
    return (f"Write an email inviting {name} to {event}.\n\nSubject: Invitation to "
            f"{_title_case(event.replace('my ', '').replace('our ', ''))}\n\nDear {name},\n\n{body}\n\n"
            f"{rng.choice(['Best regards', 'See you soon', 'Warm wishes'])},\n{sender}")


# ----- the mixture ------------------------------------------------------------------------------------

def _country_doc(make: Callable[[Country, random.Random], str]) -> Callable[[random.Random], str]:
    return lambda rng: make(rng.choice(COUNTRIES), rng)


# (weight, generator). Weights are per document; emails are ~10x longer than facts, so their share of
# tokens is about a third. Capitals get the most documents because they are what the model must recall.
MIXTURE: list[tuple[float, Callable[[random.Random], str]]] = [
    (24, _country_doc(capital_sentence)),
    (11, _country_doc(capital_qa)),
    (5, _country_doc(country_paragraph)),
    (9, _country_doc(country_fact)),
    (3, capital_list),
    (5, opposite_fact),
    (5, counting),
    (5, days_and_months),
    (3, small_fact),
    (2, joke),
    (6, greeting),
    (4, repeat_after_me),
    (5, apology_email),
    (1, thank_you_email),
    (1, invitation_email),
]


def generate_documents(seed: int = 0) -> Iterator[str]:
    """An endless, deterministic stream of documents (no BOS/EOS: the tokenizer adds those)."""
    rng = random.Random(seed)
    weights = [w for w, _ in MIXTURE]
    makers = [m for _, m in MIXTURE]
    while True:
        yield rng.choices(makers, weights)[0](rng)


def capital_prompts() -> list[tuple[str, str]]:
    """(prompt, expected capital) for every country in the corpus: the accuracy check's inputs."""
    return [(f"The capital of {c.name} is", c.capital) for c in COUNTRIES]
