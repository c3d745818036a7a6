"""Fixed vocabularies of the ShopSmart world: names, places, products, devices.

Every string here is plain ASCII without quotes or backslashes, so the vectorised JSON writers
can paste them into JSON without escaping (a unit test parses every line to prove it).
"""

from __future__ import annotations

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hannah", "Ivan", "Julia",
    "Karl", "Laura", "Marco", "Nina", "Oscar", "Paula", "Quentin", "Rosa", "Stefan", "Tina",
    "Ulrich", "Vera", "Walter", "Xenia", "Yann", "Zoe", "Lukas", "Sophie", "Jonas", "Marie",
    "Leon", "Mia", "Paul", "Lea", "Elias", "Lina", "Noah", "Lena", "Finn", "Amelie",
    "Louis", "Chloe", "Hugo", "Camille", "Jules", "Manon", "Lucas", "Ines", "Arthur", "Alice",
    "Sem", "Tess", "Daan", "Fenna", "Bram", "Julia", "Luca", "Giulia", "Matteo", "Chiara",
    "Lorenzo", "Sofia", "Pablo", "Lucia", "Mateo", "Carmen", "Diego", "Elena", "Javier", "Marta",
    "Tobias", "Jana", "Simon", "Katrin", "Florian", "Sabine", "Thomas", "Petra", "Michael",
    "Ursula",
    "Victor", "Helene", "Antoine", "Margaux", "Pieter", "Sanne", "Ruben", "Eva", "Tomas", "Ana",
    "Nils", "Ida", "Emil", "Frida", "Oskar", "Alma", "Theo", "Luisa", "Max", "Johanna",
)  # fmt: skip

LAST_NAMES = (
    "Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Braun", "Zimmermann",
    "Hartmann", "Kruger", "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit",
    "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "Fournier",
    "DeJong", "Jansen", "DeVries", "VanDijk", "Bakker", "Visser", "Smit", "Meijer", "Mulder",
    "Bos", "Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
    "Greco", "Bruno", "Gallo", "Conti", "Lopez", "Martinez", "Sanchez", "Perez", "Gomez",
    "Fernandez", "Rodriguez", "Gonzalez", "Hernandez", "Ruiz", "Diaz", "Moreno", "Alvarez",
    "Gruber", "Huber", "Bauer", "Wagner", "Pichler", "Steiner", "Moser", "Mayer", "Hofer",
    "Leitner", "Berger", "Fuchs", "Eder", "Fischer", "Schmid", "Winkler", "Weiss", "Lang",
    "Baumann", "Frank",
)  # fmt: skip

# ISO country, phone calling code, postcode style, time zone, (city, region code) pairs.
COUNTRIES = (
    ("DE", "49", "5", "Europe/Berlin",
     (("Berlin", "BE"), ("Hamburg", "HH"), ("Munich", "BY"), ("Cologne", "NW"), ("Frankfurt", "HE"),
      ("Stuttgart", "BW"), ("Leipzig", "SN"), ("Dresden", "SN"))),
    ("FR", "33", "5", "Europe/Paris",
     (("Paris", "IDF"), ("Lyon", "ARA"), ("Marseille", "PAC"), ("Toulouse", "OCC"),
      ("Nantes", "PDL"),
      ("Lille", "HDF"))),
    ("NL", "31", "NL", "Europe/Amsterdam",
     (("Amsterdam", "NH"), ("Rotterdam", "ZH"), ("Utrecht", "UT"), ("Eindhoven", "NB"))),
    ("AT", "43", "4", "Europe/Vienna",
     (("Vienna", "9"), ("Graz", "6"), ("Linz", "4"), ("Salzburg", "5"))),
    ("BE", "32", "4", "Europe/Brussels",
     (("Brussels", "BRU"), ("Antwerp", "VAN"), ("Ghent", "VOV"))),
    ("ES", "34", "5", "Europe/Madrid",
     (("Madrid", "MD"), ("Barcelona", "CT"), ("Valencia", "VC"), ("Seville", "AN"))),
    ("IT", "39", "5", "Europe/Rome",
     (("Rome", "LAZ"), ("Milan", "LOM"), ("Turin", "PIE"), ("Naples", "CAM"))),
)  # fmt: skip
COUNTRY_WEIGHTS = (0.34, 0.2, 0.12, 0.08, 0.06, 0.1, 0.1)

STREETS = (
    "Main Street", "Station Road", "Church Lane", "Market Square", "Park Avenue", "Mill Road",
    "Garden Street", "Lake View", "River Walk", "Castle Hill", "School Street", "Forest Way",
    "Oak Avenue", "Linden Alley", "Harbour Road", "Bridge Street", "North Road", "Elm Close",
)  # fmt: skip

FREE_DOMAINS = (
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "gmx.de", "web.de", "orange.fr",
    "icloud.com", "proton.me", "libero.it",
)  # fmt: skip
FREE_DOMAIN_WEIGHTS = (0.34, 0.08, 0.12, 0.1, 0.08, 0.07, 0.06, 0.08, 0.03, 0.04)
# Plausible mistyped domains for each free domain above (same order).
DOMAIN_TYPOS = (
    ("gmial.com", "gmail.co", "gmai.com"), ("yaho.com", "yahooo.com", "yahoo.co"),
    ("outlok.com", "outlook.co", "outllook.com"), ("hotmial.com", "hotmail.co", "hotmal.com"),
    ("gmx.dee", "gxm.de", "gmx.d"), ("web.dee", "wbe.de", "webb.de"),
    ("orange.fe", "ornage.fr", "orang.fr"),
    ("icloud.co", "iclod.com", "icould.com"), ("proton.mee", "protn.me", "proton.m"),
    ("libero.i", "libro.it", "liberoo.it"),
)  # fmt: skip
WORK_DOMAINS = (
    "northwind-traders.com", "contoso-group.com", "fabrikam-labs.com", "initech-systems.com",
    "globex-corp.com", "umbrella-logistics.com", "hooli-cloud.com", "wonka-foods.com",
    "tyrell-industries.com", "cyberdyne-tech.com", "soylent-goods.com", "stark-engineering.com",
)  # fmt: skip

# (category, slug, median price in cents, nouns)
CATEGORIES = (
    ("Electronics", "electronics", 8900,
     ("Headphones", "Speaker", "Charger", "Keyboard", "Mouse", "Webcam", "Power Bank",
      "Smartwatch")),
    ("Home and Kitchen", "home-kitchen", 3900,
     ("Coffee Grinder", "Desk Lamp", "Frying Pan", "Knife Set", "Kettle", "Blender",
      "Cutting Board")),
    ("Fashion", "fashion", 4900,
     ("Sneakers", "Rain Jacket", "Scarf", "Backpack", "Sunglasses", "Wool Sweater", "Belt")),
    ("Beauty", "beauty", 1900, ("Face Cream", "Shampoo", "Perfume", "Lip Balm", "Hair Dryer")),
    ("Sports", "sports", 3500,
     ("Yoga Mat", "Running Shoes", "Water Bottle", "Dumbbell Set", "Bike Light", "Tennis Racket")),
    ("Toys", "toys", 2500, ("Puzzle", "Building Blocks", "Board Game", "Plush Bear", "Kite")),
    ("Books", "books", 1500, ("Cookbook", "Novel", "Travel Guide", "Notebook", "Comic")),
    ("Garden", "garden", 2900, ("Garden Hose", "Plant Pot", "Pruning Shears", "Bird Feeder")),
    ("Office", "office", 2200, ("Desk Organizer", "Fountain Pen", "Monitor Stand", "Planner")),
    ("Pet Supplies", "pet-supplies", 2400, ("Dog Leash", "Cat Tree", "Pet Bed", "Chew Toy")),
    ("Grocery", "grocery", 900,
     ("Olive Oil", "Coffee Beans", "Green Tea", "Dark Chocolate", "Honey")),
    ("Health", "health", 1700, ("Vitamin D", "First Aid Kit", "Thermometer", "Massage Ball")),
)  # fmt: skip
CATEGORY_WEIGHTS = (0.14, 0.13, 0.14, 0.08, 0.09, 0.06, 0.07, 0.05, 0.06, 0.05, 0.08, 0.05)

ADJECTIVES = (
    "Classic", "Compact", "Deluxe", "Eco", "Essential", "Premium", "Pro", "Smart", "Ultra",
    "Vintage", "Nordic", "Urban", "Travel", "Family", "Mini", "Max", "Soft", "Bold", "Pure", "Zen",
)  # fmt: skip

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
)

EXTERNAL_REFERRERS = (
    "",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://www.facebook.com/",
    "https://www.instagram.com/",
    "https://duckduckgo.com/",
)
EXTERNAL_REFERRER_WEIGHTS = (0.35, 0.4, 0.05, 0.08, 0.08, 0.04)

AGENT_NAMES = (
    "Sam Support", "Alex Helpdesk", "Robin Care", "Kim Service", "Jo Assist", "Charlie Desk",
    "Dana Reply", "Eli Solve", "Frankie Fix", "Gabi Guide", "Harper Help", "Izzy Answer",
)  # fmt: skip

TICKET_TOPICS = (
    # (subject template, tag, needs an order)
    ("Where is my order {order}?", "shipping", True),
    ("Refund request for order {order}", "refund", True),
    ("Item in order {order} arrived damaged", "damaged", True),
    ("Wrong size in order {order}", "returns", True),
    ("Cannot log in to my account", "account", False),
    ("Question about a product", "product_question", False),
    ("Change my delivery address", "account", False),
    ("Discount code does not work", "promotion", False),
)
TICKET_REPLIES = (
    "Thanks for reaching out, we are looking into this for you.",
    "Sorry for the trouble. I have escalated this to our logistics team.",
    "We have issued the refund; it should show within 5 business days.",
    "Could you send us a photo of the item?",
)
CSAT_REMARKS = ("", "Quick and helpful.", "Took too long.", "Problem not solved.", "Great service!")

CAMPAIGN_THEMES = (
    "New arrivals", "Weekend deals", "Staff picks", "Spring cleaning", "Summer sale",
    "Back to school", "Autumn favourites", "Black Friday preview", "Gift guide", "Winter warmers",
)  # fmt: skip
