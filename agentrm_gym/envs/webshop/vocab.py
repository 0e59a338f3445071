"""The vocabulary the WebShop catalogue is generated from: categories, product types, attributes, options.

Each :class:`ProductType` is one kind of product (``eau de parfum``, ``protein bar``, ``wireless earbuds``)
with its place in a category tree (like Amazon's ``Beauty & Personal Care › Fragrance``), the search
query its products were "scraped" with (WebShop's ``query`` field), a pool of attributes (the phrases
goals ask for: "long lasting", "gluten free") and option groups (size, color, flavor...). Phrases are
chosen so that no two attributes of a type, and no two values of an option group, fuzzy-match each other
(``rapidfuzz`` token-set ratio > 85), because WebShop's reward matches them fuzzily; a test checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProductType:
    """One kind of product in the catalogue.

    Attributes:
        name: the type's noun phrase, lower case ("eau de parfum"); used in titles and instructions.
        category: the top-level category key ("beauty", "grocery", ...).
        path: the category path below the top level (joined with " › " after the top-level name).
        query: the search query WebShop would have scraped this type with.
        attributes: the attribute pool; each product draws a few.
        options: option group name -> the pool of values; each product offers a subset of each group.
        price: (low, high) price range in dollars.
        descriptors: adjective phrases used in titles (not attributes, never asked for by goals).
    """

    name: str
    category: str
    path: tuple[str, ...]
    query: str
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    price: tuple[float, float] = (5.0, 60.0)
    descriptors: tuple[str, ...] = ()


#: Top-level category key -> the name shown in the category path.
CATEGORIES = {
    "beauty": "Beauty & Personal Care",
    "grocery": "Grocery & Gourmet Food",
    "fashion": "Clothing, Shoes & Jewelry",
    "electronics": "Electronics",
    "home": "Home & Kitchen",
    "sports": "Sports & Outdoors",
}

COLORS = ("black", "white", "navy", "grey", "burgundy", "beige", "olive", "teal", "mustard", "coral", "ivory")
DEVICE_COLORS = ("black", "white", "silver", "rose gold", "midnight", "sky blue")
CLOTHING_SIZES = ("x-small", "small", "medium", "large", "x-large", "xx-large")
SHOE_SIZES = ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "11", "12")
SCENTS = ("vanilla", "citrus", "sandalwood", "jasmine", "lavender", "coconut", "eucalyptus")

_BEAUTY = ("cruelty free", "paraben free", "long lasting", "dermatologist tested", "vegan", "travel size",
           "natural ingredients", "sensitive skin")
_FOOD = ("gluten free", "non gmo", "low sugar", "keto friendly", "dairy free", "organic", "high protein",
         "kosher certified", "individually wrapped", "low calorie")
_CLOTHES = ("machine wash", "moisture wicking", "relaxed fit", "long sleeve", "button closure", "quick drying",
            "soft material", "polyester spandex", "classic fit", "elastic waistband")
_TECH = ("fast charging", "high speed", "easy install", "noise cancelling", "plug and play", "usb c",
         "long battery life", "water resistant", "aluminum alloy", "hands free")
_HOME = ("easy clean", "dishwasher safe", "space saving", "non slip", "machine washable", "eco friendly",
         "heavy duty", "living room", "stainless steel", "assembly required")
_SPORT = ("non slip", "lightweight", "bpa free", "high density", "easy carry", "heavy duty", "leak proof",
          "adjustable strap", "eco friendly", "anti slip grip")


def _t(name: str, category: str, path: tuple[str, ...], query: str, attributes: tuple[str, ...],
       options: dict[str, tuple[str, ...]], price: tuple[float, float], descriptors: tuple[str, ...] = ()
       ) -> ProductType:
    return ProductType(name, category, path, query, attributes, options, price, descriptors)


PRODUCT_TYPES: tuple[ProductType, ...] = (
    # ---------------------------------------------------------------- beauty
    _t("eau de parfum", "beauty", ("Fragrance", "Eau de Parfum"), "fragrance",
       (*_BEAUTY, "alcohol free"), {"size": ("1 fl oz", "1.7 fl oz", "3.4 fl oz", "6.76 fl oz"), "scent": SCENTS},
       (18, 140), ("signature", "luxury", "elegant")),
    _t("shampoo", "beauty", ("Hair Care", "Shampoo"), "shampoo",
       (*_BEAUTY, "sulfate free", "color safe"), {"size": ("8 fl oz", "12 fl oz", "16.9 fl oz", "33.8 fl oz"),
                                                 "scent": SCENTS}, (6, 40), ("daily", "volumizing", "gentle")),
    _t("face moisturizer", "beauty", ("Skin Care", "Face", "Moisturizers"), "face cream",
       (*_BEAUTY, "hyaluronic acid", "fragrance free", "anti aging"), {"size": ("1 oz", "1.7 oz", "2.5 oz", "4 oz")},
       (9, 85), ("daily", "hydrating", "lightweight")),
    _t("lipstick", "beauty", ("Makeup", "Lips", "Lipstick"), "lipstick",
       (*_BEAUTY, "matte finish", "highly pigmented"), {"color": ("ruby red", "nude", "berry", "mauve", "plum",
                                                                  "peach", "cherry")},
       (5, 35), ("velvet", "creamy", "bold")),
    _t("nail polish", "beauty", ("Makeup", "Nails", "Nail Polish"), "nail polish",
       (*_BEAUTY, "quick dry", "non toxic", "high gloss"), {"color": ("ruby red", "nude", "berry", "mauve",
                                                                     "lilac", "mint", "gold glitter")},
       (4, 22), ("salon", "chip resistant", "glossy")),
    _t("body lotion", "beauty", ("Skin Care", "Body", "Lotions"), "body lotion",
       (*_BEAUTY, "shea butter", "fast absorbing", "fragrance free"),
       {"size": ("8 fl oz", "13.5 fl oz", "16 fl oz", "32 fl oz"), "scent": SCENTS}, (5, 30),
       ("nourishing", "daily", "rich")),
    _t("makeup brush set", "beauty", ("Tools & Accessories", "Makeup Brushes"), "makeup brushes",
       ("cruelty free", "synthetic hair", "easy to clean", "travel size", "vegan", "soft bristles",
        "storage case"), {"color": ("black", "rose gold", "pink marble", "champagne", "white")}, (8, 45),
       ("professional", "complete", "premium")),
    _t("sunscreen", "beauty", ("Skin Care", "Sunscreens"), "sunscreen",
       (*_BEAUTY, "broad spectrum", "reef safe", "water resistant"), {"size": ("1.7 fl oz", "3 fl oz", "5 fl oz",
                                                                               "8 fl oz")},
       (7, 38), ("sheer", "mineral", "daily")),
    # ---------------------------------------------------------------- grocery
    _t("protein bar", "grocery", ("Snack Foods", "Bars", "Protein Bars"), "protein bars",
       _FOOD, {"flavor": ("chocolate peanut butter", "cookies and cream", "salted caramel", "birthday cake",
                          "mint chocolate chip"), "size": ("12 count", "15 count", "24 count")},
       (12, 60), ("chewy", "crunchy", "delicious")),
    _t("coffee beans", "grocery", ("Beverages", "Coffee", "Whole Coffee Beans"), "coffee beans",
       ("organic", "fair trade", "non gmo", "kosher certified", "low acid", "single origin", "small batch"),
       {"flavor": ("dark roast", "medium roast", "light roast", "french vanilla", "hazelnut"),
        "size": ("12 ounce", "2 pound", "5 pound")}, (9, 70), ("bold", "smooth", "rich")),
    _t("green tea", "grocery", ("Beverages", "Tea", "Green Tea"), "green tea bags",
       ("organic", "non gmo", "caffeine free", "kosher certified", "individually wrapped", "gluten free",
        "sugar free"), {"flavor": ("jasmine", "matcha", "lemon ginger", "honey", "peach"),
                        "size": ("20 count", "40 count", "100 count")}, (4, 30), ("refreshing", "calming", "pure")),
    _t("trail mix", "grocery", ("Snack Foods", "Nuts & Seeds", "Trail Mix"), "trail mix",
       _FOOD, {"flavor": ("sweet and salty", "tropical", "dark chocolate", "honey roasted"),
               "size": ("6 ounce", "26 ounce", "pack of 12")}, (5, 35), ("crunchy", "wholesome", "hearty")),
    _t("olive oil", "grocery", ("Pantry Staples", "Oils", "Olive Oil"), "extra virgin olive oil",
       ("organic", "non gmo", "cold pressed", "kosher certified", "gluten free", "first harvest", "glass bottle"),
       {"size": ("16.9 fl oz", "25.3 fl oz", "33.8 fl oz", "1 gallon")}, (8, 55), ("premium", "imported", "fruity")),
    _t("beef jerky", "grocery", ("Snack Foods", "Jerky & Dried Meats", "Beef Jerky"), "beef jerky",
       ("gluten free", "high protein", "low sugar", "keto friendly", "grass fed", "no preservatives",
        "individually wrapped"), {"flavor": ("original", "teriyaki", "peppered", "sweet and spicy"),
                                  "size": ("3.25 ounce", "10 ounce", "pack of 8")}, (7, 45),
       ("tender", "smoked", "savory")),
    _t("granola", "grocery", ("Breakfast Foods", "Cereals", "Granola"), "granola",
       _FOOD, {"flavor": ("almond butter", "blueberry", "cinnamon raisin", "maple pecan"),
               "size": ("11 ounce", "12 ounce", "pack of 6")}, (4, 32), ("crunchy", "clustered", "toasted")),
    _t("sparkling water", "grocery", ("Beverages", "Water", "Sparkling Water"), "sparkling water",
       ("zero calorie", "sugar free", "caffeine free", "non gmo", "sodium free", "natural flavors",
        "recyclable cans"), {"flavor": ("lime", "grapefruit", "black cherry", "mango", "watermelon"),
                             "size": ("12 fl oz", "pack of 8", "pack of 24")}, (5, 28),
       ("crisp", "refreshing", "bubbly")),
    _t("honey", "grocery", ("Pantry Staples", "Sweeteners", "Honey"), "raw honey",
       ("organic", "raw unfiltered", "non gmo", "kosher certified", "gluten free", "glass jar", "single origin"),
       {"flavor": ("wildflower", "clover", "manuka", "orange blossom"), "size": ("12 ounce", "16 ounce",
                                                                                 "32 ounce")},
       (6, 60), ("pure", "golden", "natural")),
    # ---------------------------------------------------------------- fashion
    _t("t-shirt", "fashion", ("Men", "Clothing", "Shirts", "T-Shirts"), "mens t shirts",
       _CLOTHES, {"color": COLORS, "size": CLOTHING_SIZES}, (8, 35), ("crew neck", "graphic", "basic")),
    _t("hoodie", "fashion", ("Women", "Clothing", "Fashion Hoodies & Sweatshirts"), "womens hoodie",
       _CLOTHES, {"color": COLORS, "size": CLOTHING_SIZES}, (18, 60), ("oversized", "cozy", "pullover")),
    _t("jeans", "fashion", ("Men", "Clothing", "Jeans"), "mens jeans",
       ("machine wash", "relaxed fit", "button closure", "classic fit", "stretch denim", "straight leg",
        "slim fit", "zipper fly"), {"color": ("light wash", "dark wash", "black", "stone", "indigo"),
                                     "size": ("30w x 30l", "32w x 32l", "34w x 32l", "36w x 34l")},
       (20, 80), ("vintage", "everyday", "rugged")),
    _t("summer dress", "fashion", ("Women", "Clothing", "Dresses", "Casual"), "womens dresses",
       ("machine wash", "short sleeve", "v neck", "pockets", "flowy", "knee length", "elastic waistband",
        "soft material"), {"color": COLORS, "size": CLOTHING_SIZES}, (16, 70), ("floral", "casual", "boho")),
    _t("running shoes", "fashion", ("Men", "Shoes", "Athletic", "Running"), "mens running shoes",
       ("rubber sole", "lace up", "breathable mesh", "arch support", "lightweight", "memory foam",
        "non slip"), {"color": ("black", "white", "grey", "navy", "neon yellow", "red"), "size": SHOE_SIZES},
       (30, 130), ("athletic", "cushioned", "sporty")),
    _t("ankle socks", "fashion", ("Women", "Clothing", "Socks & Hosiery", "Socks"), "womens socks",
       ("machine wash", "moisture wicking", "cushioned sole", "breathable", "cotton blend", "arch support"),
       {"color": ("black", "white", "grey", "assorted"), "size": ("shoe size 5-9", "shoe size 9-12"),
        "quantity": ("6 pairs", "10 pairs", "12 pairs")}, (7, 28), ("athletic", "low cut", "comfy")),
    _t("winter jacket", "fashion", ("Women", "Clothing", "Coats, Jackets & Vests"), "womens winter coat",
       ("water resistant", "hooded", "zipper closure", "windproof", "fleece lined", "machine wash",
        "packable"), {"color": COLORS, "size": CLOTHING_SIZES}, (40, 180), ("puffer", "insulated", "warm")),
    _t("sunglasses", "fashion", ("Men", "Accessories", "Sunglasses & Eyewear"), "polarized sunglasses",
       ("polarized lens", "uv400 protection", "lightweight", "metal frame", "scratch resistant",
        "case included"), {"color": ("black frame", "tortoise", "gold mirror", "silver blue", "clear")},
       (10, 90), ("classic", "aviator", "retro")),
    # ---------------------------------------------------------------- electronics
    _t("wireless earbuds", "electronics", ("Headphones", "Earbud Headphones"), "wireless earbuds",
       ("noise cancelling", "long battery life", "water resistant", "hands free", "fast charging",
        "touch control", "charging case"), {"color": DEVICE_COLORS}, (19, 150), ("bluetooth", "true wireless",
                                                                                 "compact")),
    _t("phone case", "electronics", ("Cell Phones & Accessories", "Cases"), "phone case",
       ("shockproof", "slim fit", "wireless charging compatible", "raised edges", "anti scratch",
        "easy install", "military grade"), {"color": ("clear", "black", "lavender", "forest green", "sky blue"),
                                            "model": ("iphone 13", "iphone 14", "iphone 15", "galaxy s23")},
       (7, 35), ("protective", "rugged", "slim")),
    _t("usb c cable", "electronics", ("Computers", "Cables", "USB Cables"), "usb c cable",
       ("fast charging", "high speed", "braided nylon", "durable", "data transfer", "usb c", "aluminum alloy"),
       {"size": ("3 ft", "6 ft", "10 ft"), "quantity": ("1 pack", "2 pack", "3 pack")}, (5, 25),
       ("premium", "tangle free", "reinforced")),
    _t("bluetooth speaker", "electronics", ("Portable Audio", "Portable Speakers"), "bluetooth speaker",
       ("water resistant", "long battery life", "hands free", "stereo sound", "deep bass", "built in microphone",
        "lightweight"), {"color": DEVICE_COLORS}, (20, 160), ("portable", "rugged", "compact")),
    _t("power bank", "electronics", ("Cell Phones & Accessories", "Chargers", "Portable Power Banks"),
       "portable charger", ("fast charging", "usb c", "led display", "compact design", "dual output",
                            "high capacity", "airline approved"),
       {"size": ("10000mah", "20000mah", "26800mah"), "color": ("black", "white", "navy")}, (15, 70),
       ("portable", "slim", "powerful")),
    _t("hdmi cable", "electronics", ("Television & Video", "Accessories", "Cables", "HDMI Cables"), "hdmi cable",
       ("high speed", "4k hdr", "gold plated", "braided nylon", "ethernet support", "plug and play"),
       {"size": ("3 ft", "6 ft", "10 ft", "15 ft")}, (6, 30), ("premium", "ultra", "certified")),
    _t("wireless mouse", "electronics", ("Computers", "Accessories", "Mice"), "wireless mouse",
       ("ergonomic design", "silent click", "usb receiver", "long battery life", "plug and play",
        "adjustable dpi", "rechargeable"), {"color": DEVICE_COLORS}, (10, 60), ("slim", "compact", "optical")),
    _t("laptop stand", "electronics", ("Computers", "Laptop Accessories", "Stands"), "laptop stand",
       ("aluminum alloy", "adjustable height", "foldable", "heat dissipation", "non slip", "easy install",
        "portable design"), {"color": ("silver", "space grey", "black")}, (15, 55),
       ("ergonomic", "sturdy", "minimalist")),
    _t("desk lamp", "electronics", ("Lighting", "Lamps", "Desk Lamps"), "led desk lamp",
       ("eye caring", "dimmable", "usb charging port", "touch control", "energy efficient", "adjustable arm",
        "timer function"), {"color": ("black", "white", "silver")}, (15, 70), ("modern", "led", "sleek")),
    # ---------------------------------------------------------------- home
    _t("throw pillow cover", "home", ("Home Décor", "Decorative Pillows", "Throw Pillow Covers"),
       "throw pillow covers", ("machine washable", "living room", "hidden zipper", "soft velvet", "set of 2",
                               "double sided", "farmhouse style"),
       {"color": COLORS, "size": ("16 x 16 inch", "18 x 18 inch", "20 x 20 inch")}, (8, 35),
       ("decorative", "cozy", "modern")),
    _t("bath towel set", "home", ("Bath", "Towels", "Bath Towels"), "bath towels",
       ("100% cotton", "highly absorbent", "quick drying", "machine washable", "soft material", "hotel quality",
        "oeko tex certified"), {"color": COLORS, "quantity": ("set of 4", "set of 6", "set of 8")}, (18, 80),
       ("plush", "luxury", "fluffy")),
    _t("shower curtain", "home", ("Bath", "Shower Curtains"), "shower curtain",
       ("waterproof fabric", "machine washable", "hooks included", "mildew resistant", "weighted hem",
        "easy clean"), {"color": COLORS, "size": ("72 x 72 inch", "72 x 84 inch", "36 x 72 inch")}, (10, 40),
       ("modern", "striped", "botanical")),
    _t("scented candle", "home", ("Home Décor", "Candles", "Jar Candles"), "scented candles",
       ("soy wax", "long burning", "lead free wick", "gift set", "glass jar", "natural essential oils"),
       {"scent": SCENTS, "size": ("7 oz", "14 oz", "22 oz")}, (9, 45), ("aromatherapy", "relaxing", "cozy")),
    _t("coffee mug", "home", ("Kitchen & Dining", "Dining & Entertaining", "Cups & Mugs"), "coffee mug",
       ("dishwasher safe", "microwave safe", "gift box", "lead free", "large capacity", "ceramic", "easy clean"),
       {"color": COLORS, "size": ("11 oz", "15 oz", "20 oz")}, (7, 30), ("funny", "classic", "handmade")),
    _t("frying pan", "home", ("Kitchen & Dining", "Cookware", "Skillets"), "non stick frying pan",
       ("dishwasher safe", "oven safe", "induction compatible", "pfoa free", "stay cool handle",
        "stainless steel", "heavy duty"), {"size": ("8 inch", "10 inch", "12 inch")}, (15, 90),
       ("nonstick", "granite", "professional")),
    _t("bed sheet set", "home", ("Bedding", "Sheets & Pillowcases", "Sheet & Pillowcase Sets"), "bed sheets",
       ("deep pocket", "machine washable", "wrinkle free", "hypoallergenic", "breathable", "fade resistant",
        "egyptian cotton"), {"color": COLORS, "size": ("twin", "full", "queen", "king")}, (20, 120),
       ("luxury", "silky", "cooling")),
    _t("wall clock", "home", ("Home Décor", "Clocks", "Wall Clocks"), "wall clock",
       ("silent movement", "battery operated", "easy to read", "living room", "large numbers", "metal frame"),
       {"color": ("black", "white", "gold", "wood grain"), "size": ("10 inch", "12 inch", "14 inch")}, (12, 60),
       ("modern", "vintage", "minimalist")),
    _t("storage basket", "home", ("Storage & Organization", "Baskets, Bins & Containers"), "storage baskets",
       ("foldable", "sturdy handles", "space saving", "eco friendly", "machine washable", "set of 3",
        "cotton rope"), {"color": ("beige", "grey", "white", "black", "natural")}, (10, 45),
       ("woven", "collapsible", "rustic")),
    # ---------------------------------------------------------------- sports
    _t("yoga mat", "sports", ("Exercise & Fitness", "Yoga", "Mats"), "yoga mat",
       ("non slip", "high density", "eco friendly", "carrying strap", "extra thick", "sweat resistant",
        "lightweight"), {"color": ("purple", "black", "teal", "pink", "grey"), "size": ("1/4 inch", "1/2 inch")},
       (15, 70), ("premium", "cushioned", "durable")),
    _t("water bottle", "sports", ("Sports & Fitness Accessories", "Water Bottles"), "insulated water bottle",
       ("bpa free", "leak proof", "double wall insulated", "stainless steel", "dishwasher safe",
        "wide mouth", "straw lid"), {"color": ("black", "white", "teal", "coral", "lavender"),
                                    "size": ("18 oz", "32 oz", "40 oz")}, (12, 45), ("sport", "rugged", "sleek")),
    _t("resistance bands", "sports", ("Exercise & Fitness", "Strength Training", "Resistance Bands"),
       "resistance bands", ("heavy duty", "door anchor", "carry bag", "latex free", "anti snap",
                            "cushioned handles"), {"quantity": ("set of 3", "set of 5", "set of 11")}, (9, 40),
       ("professional", "versatile", "home gym")),
    _t("camping tent", "sports", ("Outdoor Recreation", "Camping & Hiking", "Tents"), "camping tent",
       ("waterproof", "easy setup", "rainfly included", "carry bag", "mesh windows", "lightweight"),
       {"size": ("2 person", "4 person", "6 person"), "color": ("green", "orange", "grey", "blue")}, (40, 200),
       ("dome", "family", "backpacking")),
    _t("dumbbell set", "sports", ("Exercise & Fitness", "Strength Training", "Dumbbells"), "dumbbells",
       ("neoprene coated", "non slip", "hex shape", "storage rack", "anti roll", "color coded"),
       {"size": ("5 lb pair", "10 lb pair", "15 lb pair", "20 lb pair")}, (15, 120), ("compact", "solid", "gym")),
    _t("jump rope", "sports", ("Exercise & Fitness", "Cardio Training", "Jump Ropes"), "jump rope",
       ("adjustable length", "tangle free", "ball bearings", "foam handles", "lightweight", "steel wire"),
       {"color": ("black", "red", "blue", "pink")}, (6, 25), ("speed", "fitness", "crossfit")),
)

AUDIENCES = {
    "beauty": ("for women", "for men", "for all skin types", "unisex"),
    "grocery": ("for snacking", "for breakfast", "for the office", "for kids"),
    "fashion": ("for everyday wear", "for work", "for travel", "for outdoor activities"),
    "electronics": ("for iphone and android", "for home office", "for travel", "for gaming"),
    "home": ("for bedroom", "for kitchen", "for apartment", "for housewarming"),
    "sports": ("for home workout", "for gym", "for outdoor", "for beginners"),
}

BRAND_SYLLABLES = ("lu", "mo", "ra", "ve", "ta", "ni", "ko", "sa", "be", "li", "zo", "an", "el", "fi", "qu",
                   "ro", "da", "mi", "pe", "xa", "or", "ka", "vi", "no", "ca", "tu")

REVIEW_LINES = (
    (5, "Exactly what I wanted", "Works great and arrived quickly. Would buy again."),
    (4, "Good value", "Nice quality for the price, minor issues with the packaging."),
    (5, "Love it", "My second purchase from this brand and I am not disappointed."),
    (3, "It is okay", "Does the job but I expected a little more."),
    (2, "Not for me", "The quality did not match the pictures."),
    (4, "Recommended", "Solid product, I use it every day."),
)
