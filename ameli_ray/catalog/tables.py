"""The tables the demo catalogue is drawn from: colours, and categories with their variant axes,
brands, Spec layout and wording; plus the AMELI rule for which attribute values count."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _Color:
    rgb: tuple[int, int, int]
    group: str  # two colours of one family never share a group, so "the blue one" is unambiguous
    aliases: tuple[str, ...]  # indirect ways a reviewer names it
    code: str  # model-number suffix


COLORS: dict[str, _Color] = {
    "Midnight Blue": _Color((28, 40, 92), "blue", ("dark blue", "blue"), "MB"),
    "Royal Blue": _Color((40, 84, 196), "blue", ("blue", "bright blue"), "RB"),
    "Navy": _Color((24, 34, 74), "blue", ("dark blue",), "NY"),
    "Graphite": _Color((70, 72, 78), "gray", ("dark gray", "gray"), "GR"),
    "Heather Gray": _Color((152, 152, 158), "gray", ("gray", "light gray"), "HG"),
    "Silver": _Color((196, 198, 204), "silver", (), "SV"),
    "Stainless Steel": _Color((168, 170, 174), "silver", ("silver", "brushed metal"), "SS"),
    "Onyx Black": _Color((26, 26, 30), "black", ("black",), "OB"),
    "Black": _Color((22, 22, 22), "black", (), "BK"),
    "Arctic White": _Color((242, 242, 238), "white", ("white",), "AW"),
    "White": _Color((246, 246, 246), "white", (), "WH"),
    "Cream": _Color((238, 226, 196), "beige", ("off-white", "beige"), "CR"),
    "Sand": _Color((212, 192, 150), "beige", ("beige", "tan"), "SD"),
    "Rose Gold": _Color((212, 150, 140), "pink", ("pink", "pinkish gold"), "RG"),
    "Champagne Gold": _Color((214, 188, 128), "gold", ("gold",), "CG"),
    "Forest Green": _Color((38, 104, 62), "green", ("green", "dark green"), "FG"),
    "Olive": _Color((112, 116, 58), "green", ("army green",), "OL"),
    "Coral Red": _Color((226, 80, 70), "red", ("red",), "CO"),
    "Red": _Color((198, 30, 40), "red", (), "RD"),
    "Maroon": _Color((112, 22, 40), "red", ("dark red", "burgundy"), "MR"),
    "Lavender": _Color((178, 152, 222), "purple", ("purple", "light purple"), "LV"),
    "Sunburst Yellow": _Color((238, 198, 50), "yellow", ("yellow",), "SY"),
    "Sunset Orange": _Color((240, 122, 40), "orange", ("orange",), "SO"),
    "Teal": _Color((0, 128, 128), "teal", ("blue-green",), "TL"),
}
COLOR_RGB: dict[str, tuple[int, int, int]] = {name: c.rgb for name, c in COLORS.items()}
_MIN_FAMILY_COLOR_DISTANCE = 75.0  # RGB distance: family colours stay apart under brightness jitter


@dataclass(frozen=True)
class _Axis:
    """An attribute a family may vary along. `kind` decides paraphrases, printing and codes."""

    key: str
    kind: str
    values: tuple[str, ...]  # ordered; numeric families take a contiguous run
    weight: float  # how often families vary along it (0: never)
    printed: bool = True  # does it appear as text on product images


@dataclass(frozen=True)
class _Category:
    name: str
    noun: str  # in product names and descriptions
    nouns: tuple[str, ...]  # how reviewers call it
    plural: bool  # "these headphones"
    shape: str  # drawer
    brands: tuple[tuple[str, str], ...]  # (brand, model-number code)
    lines: tuple[str, ...]  # series stems
    axes: tuple[_Axis, ...]  # the Color axis included
    fixed: tuple[tuple[str, tuple[str, ...]], ...]  # family-level attributes and their options
    sections: tuple[tuple[str, tuple[str, ...]], ...]  # Spec subsection -> keys, in order
    name_format: str  # {Key} or {Key|display}
    says: dict[str, tuple[str, ...]]  # sentences stating a family-level attribute ({v})
    pros: tuple[str, ...]
    cons: tuple[str, ...]
    description: str
    features: tuple[tuple[str, str], ...]
    variant_feature: tuple[str, str, str] | None = None  # (axis key, header, text) naming the variant


_WARRANTY = ("Manufacturer's Warranty - Parts", ("1 year", "2 years"))
_GENERAL = ("General", ("Brand", "Series", "Model Number", "Color"))

CATEGORIES: tuple[_Category, ...] = (
    _Category(
        name="Cell Phones",
        noun="Smartphone",
        nouns=("phone", "smartphone"),
        plural=False,
        shape="phone",
        brands=(("Nordvik", "NV"), ("Kestrel", "KS"), ("Lumora", "LM"), ("Veltro", "VT"), ("Aurion", "AU")),
        lines=("Aero", "Nova", "Pulse", "Zenith", "Orbit", "Vanta", "Lyra", "Helix", "Strata", "Echo"),
        axes=(
            _Axis("Storage Capacity", "storage", ("64GB", "128GB", "256GB", "512GB", "1TB"), 0.5),
            _Axis("Color", "color", ("Midnight Blue", "Graphite", "Rose Gold", "Silver", "Onyx Black",
                                     "Arctic White", "Forest Green", "Coral Red", "Lavender",
                                     "Sunburst Yellow", "Champagne Gold", "Teal"), 0.4),
            _Axis("Carrier", "plain", ("Unlocked", "Verizon", "AT&T", "T-Mobile"), 0.12, printed=False),
        ),
        fixed=(
            ("Screen Size", ("6.1 inches", "6.4 inches", "6.7 inches")),
            ("Operating System", ("Android 14", "Android 15")),
            ("Processor", ("Octa-core 3.2 GHz", "Octa-core 2.8 GHz", "Hexa-core 3.0 GHz")),
            ("System Memory (RAM)", ("8GB", "12GB")),
            ("Rear-Facing Camera Resolution", ("50 megapixels", "48 megapixels", "64 megapixels")),
            ("Battery Capacity", ("4500 milliampere hours", "5000 milliampere hours")),
            ("Display Type", ("OLED", "AMOLED", "LCD")),
            ("Refresh Rate", ("90 hertz", "120 hertz")),
            ("5G Capable", ("Yes",)),
            ("Water Resistance Rating", ("IP68", "IP67")),
            ("Product Weight", ("6.2 ounces", "6.8 ounces", "7.1 ounces")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Storage Capacity", "Screen Size", "Operating System")),
            _GENERAL,
            ("Display", ("Display Type", "Refresh Rate")),
            ("Performance", ("Processor", "System Memory (RAM)")),
            ("Camera", ("Rear-Facing Camera Resolution",)),
            ("Power", ("Battery Capacity",)),
            ("Connectivity", ("Carrier", "5G Capable")),
            ("Features", ("Water Resistance Rating",)),
            ("Dimensions", ("Product Weight",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} Smartphone {Storage Capacity} ({Carrier}) - {Color}",
        says={
            "Screen Size": ("The screen measures {v} and is easy to read.",),
            "Operating System": ("It runs {v} smoothly.", "Coming from an older version, {v} feels snappy."),
            "Display Type": ("The {v} display is bright and colorful.",),
            "Water Resistance Rating": ("It's {v} rated, so a little rain is no problem.",),
            "System Memory (RAM)": ("With {v} of RAM, apps switch instantly.",),
        },
        pros=("Battery easily lasts a full day.", "The camera takes great photos even at night.",
              "Face recognition is quick.", "Calls sound clear.", "The screen is bright enough outdoors.",
              "It feels solid in the hand.", "Moving everything over from my old phone was easy."),
        cons=("The battery drains faster than I hoped.", "It gets warm while gaming.",
              "The camera bump makes it wobble on a desk.", "There is no charger in the box.",
              "It's too slippery without a case."),
        description=("The {Brand} {Series} pairs its {Display Type} display with a {Rear-Facing Camera Resolution} "
                     "camera and an all-day battery in a slim, durable design — made for people on the move."),
        features=(
            ("All-day battery", "A {Battery Capacity} battery keeps you going from morning to night."),
            ("Pro-grade camera", "Capture fine detail with the {Rear-Facing Camera Resolution} main camera."),
            ("Smooth display", "The {Refresh Rate} {Display Type} screen makes scrolling fluid."),
            ("Built to last", "{Water Resistance Rating} protection against dust and water."),
            ("Fast performance", "{Processor} processor with {System Memory (RAM)} of memory."),
        ),
        variant_feature=("Storage Capacity", "Room for everything",
                         "{Storage Capacity} of storage for photos, apps and videos."),
    ),
    _Category(
        name="Laptops",
        noun="Laptop",
        nouns=("laptop", "notebook"),
        plural=False,
        shape="laptop",
        brands=(("Nordvik", "NV"), ("Kestrel", "KS"), ("Altair", "AL"), ("Corvane", "CV")),
        lines=("Swift", "Vector", "Atlas", "Prism", "Summit", "Nimbus", "Forge", "Quill", "Meridian"),
        axes=(
            _Axis("System Memory (RAM)", "ram", ("8GB", "16GB", "32GB", "64GB"), 0.3),
            _Axis("Solid State Drive Capacity", "storage", ("256GB", "512GB", "1TB", "2TB"), 0.35),
            _Axis("Screen Size", "inches", ("13.3 inches", "14 inches", "15.6 inches", "16 inches"), 0.15),
            _Axis("Color", "color", ("Graphite", "Silver", "Midnight Blue", "Arctic White", "Rose Gold",
                                     "Onyx Black", "Champagne Gold", "Forest Green", "Lavender"), 0.2),
        ),
        fixed=(
            ("Processor Model", ("Intel Core i5-1335U", "Intel Core i7-1355U", "AMD Ryzen 5 7530U",
                                 "AMD Ryzen 7 7735HS")),
            ("Graphics", ("Integrated Graphics", "NVIDIA GeForce RTX 4050", "NVIDIA GeForce RTX 4060")),
            ("Operating System", ("Windows 11 Home", "Windows 11 Pro")),
            ("Screen Resolution", ("1920 x 1080", "2560 x 1600", "2880 x 1800")),
            ("Touch Screen", ("Yes", "No")),
            ("Battery Life", ("10 hours", "12 hours", "14 hours")),
            ("Backlit Keyboard", ("Yes",)),
            ("Number of USB Ports", ("2", "3")),
            ("Product Weight", ("3.1 pounds", "3.9 pounds", "4.6 pounds")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Screen Size", "System Memory (RAM)", "Solid State Drive Capacity", "Processor Model")),
            _GENERAL,
            ("Display", ("Screen Resolution", "Touch Screen")),
            ("Performance", ("Graphics", "Operating System")),
            ("Power", ("Battery Life",)),
            ("Features", ("Backlit Keyboard", "Number of USB Ports")),
            ("Dimensions", ("Product Weight",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format=('{Brand} - {Series} {Screen Size|inch} Laptop - {Processor Model} - '
                     '{System Memory (RAM)} Memory - {Solid State Drive Capacity} SSD - {Color}'),
        says={
            "Processor Model": ("The {v} handles everything I throw at it.",),
            "Graphics": ("The {v} runs my games fine.",),
            "Operating System": ("It came with {v} preinstalled.",),
            "Battery Life": ("I get close to the advertised {v} of battery life.",),
            "Screen Resolution": ("At {v} the panel looks crisp.",),
        },
        pros=("The keyboard is comfortable for long typing sessions.", "It boots up in seconds.",
              "The trackpad is smooth and precise.", "Fans stay quiet during normal work.",
              "Great build quality for the price.", "The speakers are surprisingly good."),
        cons=("The fans get loud under load.", "The webcam is grainy.", "Too much preinstalled bloatware.",
              "The charger is bulky.", "The screen could be brighter."),
        description=("The {Brand} {Series} laptop pairs an {Processor Model} processor with {Graphics} "
                     "and a {Screen Resolution} display for work, study and play."),
        features=(
            ("Power through your day", "Up to {Battery Life} of battery life on a single charge."),
            ("Sharp display", "A {Screen Resolution} panel shows every detail."),
            ("Responsive performance", "The {Processor Model} keeps multitasking smooth."),
            ("Ready to work", "{Operating System} comes preinstalled."),
        ),
        variant_feature=("Solid State Drive Capacity", "Fast storage",
                         "A {Solid State Drive Capacity} solid state drive boots in seconds."),
    ),
    _Category(
        name="Headphones",
        noun="Headphones",
        nouns=("headphones",),
        plural=True,
        shape="headphones",
        brands=(("Sonique", "SQ"), ("Kestrel", "KS"), ("Aurion", "AU"), ("Brisa", "BR")),
        lines=("Tempo", "Cadence", "Aria", "Resonance", "Hush", "Drift", "Solace", "Verve"),
        axes=(
            _Axis("Color", "color", ("Onyx Black", "Arctic White", "Midnight Blue", "Silver", "Rose Gold",
                                     "Forest Green", "Sand", "Lavender", "Coral Red", "Sunburst Yellow", "Teal"),
                  0.75),
            _Axis("Noise Cancellation", "plain", ("Active Noise Cancelling", "Passive Isolation"), 0.25),
        ),
        fixed=(
            ("Headphone Fit", ("Over-the-Ear", "On-Ear")),
            ("Connection Type", ("Bluetooth 5.3", "Bluetooth 5.2")),
            ("Battery Life", ("30 hours", "40 hours", "60 hours")),
            ("Driver Size", ("40 millimeters", "50 millimeters")),
            ("Frequency Response", ("20 - 20000 hertz", "10 - 40000 hertz")),
            ("Built-In Microphone", ("Yes",)),
            ("Foldable Design", ("Yes", "No")),
            ("Charging Interface", ("USB Type-C",)),
            ("Product Weight", ("8.8 ounces", "9.5 ounces")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Headphone Fit", "Noise Cancellation", "Battery Life")),
            _GENERAL,
            ("Audio", ("Driver Size", "Frequency Response")),
            ("Connectivity", ("Connection Type", "Charging Interface")),
            ("Features", ("Built-In Microphone", "Foldable Design")),
            ("Dimensions", ("Product Weight",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Headphone Fit} Wireless Headphones with {Noise Cancellation} - {Color}",
        says={
            "Headphone Fit": ("The {v} design stays comfortable for hours.",),
            "Connection Type": ("Pairing over {v} was instant.",),
            "Battery Life": ("Battery life is close to {v} on a charge.",),
            "Driver Size": ("The {v} drivers give punchy bass.",),
        },
        pros=("Bass is punchy without being muddy.", "They stay comfortable even after hours of use.",
              "Pairing with my phone was instant.", "The carrying case is compact and sturdy.",
              "Call quality is clear."),
        cons=("The ear pads get warm after a while.", "The app is clunky.", "They clamp a bit tight at first.",
              "Touch controls are too sensitive."),
        description=("{Brand} {Series} headphones deliver rich sound from {Driver Size} drivers and up to "
                     "{Battery Life} of playback, with a comfortable {Headphone Fit} fit."),
        features=(
            ("Long battery life", "Up to {Battery Life} of listening on a full charge."),
            ("Big sound", "Custom {Driver Size} drivers tuned for deep bass and clear highs."),
            ("Stay connected", "{Connection Type} keeps a stable link to your devices."),
            ("Fast charging", "Charge over {Charging Interface} and get hours of playback in minutes."),
        ),
    ),
    _Category(
        name="TVs",
        noun="TV",
        nouns=("TV", "television"),
        plural=False,
        shape="tv",
        brands=(("Vistara", "VS"), ("Lumora", "LM"), ("Kestrel", "KS"), ("Orivex", "OX")),
        lines=("Q7", "Q9", "Vivid", "Lumen", "Cinema", "Horizon", "Spectra", "Luxe"),
        axes=(
            _Axis("Screen Size", "inches", ("43 inches", "50 inches", "55 inches", "65 inches", "75 inches",
                                            "85 inches"), 0.85),
            _Axis("Refresh Rate", "hertz", ("60 hertz", "120 hertz", "144 hertz"), 0.2),
            _Axis("Color", "color", ("Black", "Graphite"), 0.0),
        ),
        fixed=(
            ("Display Type", ("QLED", "OLED", "LED")),
            ("Resolution", ("4K (2160p)", "8K (4320p)")),
            ("High Dynamic Range Format", ("HDR10+", "Dolby Vision")),
            ("Smart Platform", ("Google TV", "Roku TV", "Fire TV")),
            ("Number of HDMI Inputs", ("4",)),
            ("Backlight Type", ("Full Array", "Edge-Lit")),
            ("Voice Assistant Built-in", ("Alexa", "Google Assistant")),
            ("Audio Output Power", ("20 watts", "40 watts")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Screen Size", "Resolution", "Display Type", "Refresh Rate")),
            _GENERAL,
            ("Display", ("High Dynamic Range Format", "Backlight Type")),
            ("Smart Features", ("Smart Platform", "Voice Assistant Built-in")),
            ("Connectivity", ("Number of HDMI Inputs",)),
            ("Audio", ("Audio Output Power",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Screen Size|inch} Class {Series} {Display Type} {Resolution} Smart TV",
        says={
            "Display Type": ("The {v} panel has excellent contrast.",),
            "Smart Platform": ("{v} is easy to navigate.",),
            "High Dynamic Range Format": ("{v} content looks stunning.",),
        },
        pros=("The picture is bright and sharp.", "Colors pop right out of the box.", "Setup took ten minutes.",
              "Streaming apps load fast.", "Great for watching sports."),
        cons=("The built-in speakers are weak.", "The remote feels cheap.", "Viewing angles could be better.",
              "I had to turn off motion smoothing."),
        description=("Experience vivid color and deep contrast with the {Brand} {Series} {Display Type} TV, "
                     "with {High Dynamic Range Format} support and {Smart Platform} built in."),
        features=(
            ("Brilliant picture", "{Display Type} technology with {Backlight Type} backlighting."),
            ("Smart streaming", "{Smart Platform} brings your favorite apps together."),
            ("Cinematic HDR", "{High Dynamic Range Format} for lifelike highlights."),
            ("Hands-free control", "Works with {Voice Assistant Built-in}."),
        ),
        variant_feature=("Screen Size", "Immersive size", "A {Screen Size} screen fills your field of view."),
    ),
    _Category(
        name="Monitors",
        noun="Gaming Monitor",
        nouns=("monitor", "display"),
        plural=False,
        shape="monitor",
        brands=(("Vistara", "VS"), ("Corvane", "CV"), ("Pixelon", "PX"), ("Kestrel", "KS")),
        lines=("Raptor", "Apex", "Vantage", "Blaze", "Sight", "Focus", "Arc"),
        axes=(
            _Axis("Screen Size", "inches", ("24 inches", "27 inches", "32 inches", "34 inches"), 0.4),
            _Axis("Refresh Rate", "hertz", ("60 hertz", "75 hertz", "144 hertz", "165 hertz", "240 hertz"), 0.4),
            _Axis("Color", "color", ("Black", "Arctic White", "Silver"), 0.2),
        ),
        fixed=(
            ("Panel Type", ("IPS", "VA", "OLED")),
            ("Maximum Resolution", ("1920 x 1080", "2560 x 1440", "3840 x 2160")),
            ("Response Time", ("1 millisecond", "4 milliseconds")),
            ("Adaptive Sync", ("FreeSync Premium", "G-SYNC Compatible")),
            ("Inputs", ("HDMI, DisplayPort", "HDMI, DisplayPort, USB-C")),
            ("Stand Adjustments", ("Height, Tilt, Swivel", "Tilt")),
            ("VESA Mount", ("100 x 100 millimeters",)),
            ("Viewing Angle", ("178°",)),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Screen Size", "Refresh Rate", "Maximum Resolution", "Panel Type")),
            _GENERAL,
            ("Display", ("Response Time", "Adaptive Sync", "Viewing Angle")),
            ("Connectivity", ("Inputs",)),
            ("Design", ("Stand Adjustments", "VESA Mount")),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Screen Size|inch} {Panel Type} Gaming Monitor {Refresh Rate|hz} - {Color}",
        says={
            "Panel Type": ("The {v} panel has great colors.",),
            "Adaptive Sync": ("{v} works perfectly with my graphics card.",),
            "Maximum Resolution": ("At {v} text is sharp.",),
        },
        pros=("Games look incredibly smooth.", "No dead pixels on mine.", "The stand is sturdy.",
              "Text is sharp for office work too.", "It was easy to mount on my arm."),
        cons=("The on-screen menu is confusing.", "There is some backlight bleed in the corners.",
              "The built-in speakers are tinny.", "The power brick is huge."),
        description=("The {Brand} {Series} gaming monitor combines its {Panel Type} panel with "
                     "{Adaptive Sync} for tear-free play."),
        features=(
            ("Tear-free gaming", "{Adaptive Sync} keeps frames in sync with your GPU."),
            ("Fast response", "{Response Time} response time reduces motion blur."),
            ("Flexible setup", "{Stand Adjustments} adjustments and {VESA Mount} VESA support."),
        ),
        variant_feature=("Refresh Rate", "Fluid motion", "A {Refresh Rate} refresh rate for fluid motion."),
    ),
    _Category(
        name="Memory Cards",
        noun="Memory Card",
        nouns=("card", "memory card"),
        plural=False,
        shape="card",
        brands=(("Memtrix", "MX"), ("Kestrel", "KS"), ("Veltro", "VT"), ("Flashwell", "FW")),
        lines=("Extreme", "Ultra", "Pro Plus", "Endura", "Velocity", "Prime"),
        axes=(
            _Axis("Storage Capacity", "storage", ("32GB", "64GB", "128GB", "256GB", "512GB", "1TB"), 0.75),
            _Axis("Speed Class", "plain", ("V30", "V60", "V90"), 0.25),
            _Axis("Color", "color", ("Red", "Black", "Sunburst Yellow", "Royal Blue", "Graphite"), 0.0),
        ),
        fixed=(
            ("Card Type", ("microSDXC", "SDXC")),
            ("Maximum Read Speed", ("100 megabytes per second", "170 megabytes per second",
                                    "200 megabytes per second")),
            ("Maximum Write Speed", ("60 megabytes per second", "90 megabytes per second")),
            ("UHS Bus Interface", ("UHS-I", "UHS-II")),
            ("Adapter Included", ("Yes", "No")),
            ("Waterproof", ("Yes",)),
            ("Manufacturer's Warranty - Parts", ("Lifetime limited", "10 years")),
        ),
        sections=(
            ("Key Specs", ("Storage Capacity", "Card Type", "Speed Class")),
            _GENERAL,
            ("Performance", ("Maximum Read Speed", "Maximum Write Speed", "UHS Bus Interface")),
            ("Features", ("Adapter Included", "Waterproof")),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Storage Capacity} {Card Type} {UHS Bus Interface} Memory Card",
        says={
            "Card Type": ("It works great as the {v} card for my camera.",),
            "Maximum Read Speed": ("Transfers hit close to {v}.",),
            "UHS Bus Interface": ("{v} speeds make offloading quick.",),
        },
        pros=("It works flawlessly in my camera.", "Offloading photos to my computer is quick.",
              "No dropped frames when recording video.", "It comes with a handy case."),
        cons=("It slows down when the card fills up.", "The adapter feels flimsy.",
              "Write speeds dip on long recordings."),
        description=("Capture more with the {Brand} {Series} memory card: read speeds up to "
                     "{Maximum Read Speed} and {UHS Bus Interface} performance for photos and video."),
        features=(
            ("Fast transfers", "Read speeds up to {Maximum Read Speed}."),
            ("Built tough", "Waterproof, temperature proof and shock proof."),
            ("Smooth recording", "Sustained writes up to {Maximum Write Speed}."),
        ),
        variant_feature=("Storage Capacity", "Plenty of space", "{Storage Capacity} holds hours of video."),
    ),
    _Category(
        name="Portable Drives",
        noun="Portable Drive",
        nouns=("drive",),
        plural=False,
        shape="drive",
        brands=(("Memtrix", "MX"), ("Veltro", "VT"), ("Strada", "SD"), ("Aurion", "AU")),
        lines=("Vault", "Transit", "Shield", "Rapid", "Nomad", "Keep"),
        axes=(
            _Axis("Storage Capacity", "storage", ("500GB", "1TB", "2TB", "4TB", "5TB"), 0.6),
            _Axis("Color", "color", ("Graphite", "Silver", "Midnight Blue", "Coral Red", "Onyx Black",
                                     "Arctic White", "Teal"), 0.4),
        ),
        fixed=(
            ("Drive Type", ("Portable SSD", "Portable Hard Drive")),
            ("Interface", ("USB 3.2 Gen 2", "USB 3.2 Gen 1", "Thunderbolt 4")),
            ("Connector Type", ("USB Type-C",)),
            ("Maximum Read Speed", ("1050 megabytes per second", "540 megabytes per second",
                                    "2000 megabytes per second")),
            ("Compatible Platforms", ("Windows, macOS", "Windows, macOS, Android")),
            ("Hardware Encryption", ("Yes", "No")),
            ("Drop Protection", ("2 meters", "3 meters")),
            ("Product Weight", ("2.1 ounces", "6.4 ounces")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Storage Capacity", "Drive Type", "Interface")),
            _GENERAL,
            ("Performance", ("Maximum Read Speed", "Connector Type")),
            ("Compatibility", ("Compatible Platforms",)),
            ("Features", ("Hardware Encryption", "Drop Protection")),
            ("Dimensions", ("Product Weight",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Storage Capacity} External {Interface} {Drive Type} - {Color}",
        says={
            "Interface": ("Transfers over {v} are fast.",),
            "Maximum Read Speed": ("I measured close to {v} in benchmarks.",),
            "Drive Type": ("As a {v} it slips right into my pocket.",),
        },
        pros=("Backups finish much faster than with my old drive.", "It's tiny and light.",
              "It worked on my laptop without any setup.", "It feels rugged."),
        cons=("It gets warm during long transfers.", "The included cable is short.",
              "The bundled backup software is confusing."),
        description=("Take your files anywhere with the {Brand} {Series} {Drive Type}: {Interface} speeds "
                     "up to {Maximum Read Speed} in a pocket-size, drop-resistant shell."),
        features=(
            ("Blazing transfers", "Up to {Maximum Read Speed} over {Interface}."),
            ("Rugged design", "Drop protection up to {Drop Protection}."),
            ("Works everywhere", "Compatible with {Compatible Platforms}."),
        ),
        variant_feature=("Storage Capacity", "Room to grow", "{Storage Capacity} for your photos, videos and backups."),
    ),
    _Category(
        name="Sneakers",
        noun="Running Shoes",
        nouns=("shoes", "sneakers"),
        plural=True,
        shape="shoe",
        brands=(("Stridera", "ST"), ("Pacevia", "PV"), ("Kestrel", "KS"), ("Arvo", "AV")),
        lines=("Glide", "Sprint", "Cloudrun", "Trailhawk", "Flux", "Pace", "Bolt", "Ridge"),
        axes=(
            _Axis("Shoe Size", "shoe", ("US 7", "US 7.5", "US 8", "US 8.5", "US 9", "US 9.5", "US 10", "US 10.5",
                                        "US 11", "US 11.5", "US 12", "US 13"), 0.55),
            _Axis("Color", "color", ("Black", "White", "Navy", "Heather Gray", "Red", "Royal Blue", "Olive",
                                     "Sand", "Sunset Orange"), 0.45),
        ),
        fixed=(
            ("Gender", ("Men's", "Women's")),
            ("Upper Material", ("Engineered Mesh", "Knit", "Leather")),
            ("Sole Material", ("Rubber", "EVA Foam")),
            ("Closure", ("Lace-Up",)),
            ("Shoe Width", ("Standard Width", "Wide Width")),
            ("Heel-to-Toe Drop", ("8 millimeters", "10 millimeters")),
            ("Activity", ("Running", "Training", "Walking")),
            ("Product Weight", ("9.2 ounces", "10.1 ounces")),
            ("Care Instructions", ("Spot clean",)),
        ),
        sections=(
            ("Key Specs", ("Shoe Size", "Gender", "Activity")),
            _GENERAL,
            ("Materials", ("Upper Material", "Sole Material")),
            ("Fit", ("Closure", "Shoe Width", "Heel-to-Toe Drop")),
            ("Dimensions", ("Product Weight",)),
            ("Care", ("Care Instructions",)),
        ),
        name_format="{Brand} - {Gender} {Series} Running Shoes - Size {Shoe Size} - {Color}",
        says={
            "Upper Material": ("The {v} upper breathes well.",),
            "Sole Material": ("The {v} sole grips well on wet pavement.",),
            "Activity": ("I use them mostly for {v|lower}.",),
        },
        pros=("They are comfortable right out of the box.", "Great cushioning on long runs.",
              "They look even better in person.", "There's plenty of room in the toe box.",
              "Light and breathable."),
        cons=("The laces come undone easily.", "They squeak on hard floors.", "The tongue slides to one side.",
              "They run a bit narrow."),
        description=("The {Brand} {Series} keeps you moving with a breathable {Upper Material} upper and a "
                     "grippy {Sole Material} outsole."),
        features=(
            ("Breathable upper", "{Upper Material} keeps your feet cool."),
            ("Responsive cushioning", "A {Heel-to-Toe Drop} drop for a natural stride."),
            ("Secure fit", "{Closure} closure locks your foot in."),
        ),
    ),
    _Category(
        name="T-Shirts",
        noun="T-Shirt",
        nouns=("shirt", "tee", "t-shirt"),
        plural=False,
        shape="shirt",
        brands=(("Threadline", "TL"), ("Northwear", "NW"), ("Arvo", "AV"), ("Cotton & Co.", "CC")),
        lines=("Essential", "Heritage", "Everyday", "Classic", "Weekend", "Studio", "Canvas"),
        axes=(
            _Axis("Clothing Size", "clothing", ("Small", "Medium", "Large", "X-Large", "XX-Large"), 0.5),
            _Axis("Color", "color", ("Black", "White", "Navy", "Heather Gray", "Red", "Olive", "Royal Blue",
                                     "Maroon", "Sand", "Teal"), 0.5),
        ),
        fixed=(
            ("Material", ("100% Cotton", "Cotton/Polyester Blend", "Organic Cotton")),
            ("Fit", ("Regular Fit", "Slim Fit", "Relaxed Fit")),
            ("Sleeve Length", ("Short Sleeve", "Long Sleeve")),
            ("Neckline", ("Crew Neck", "V-Neck")),
            ("Gender", ("Men's", "Women's", "Unisex")),
            ("Care Instructions", ("Machine wash cold",)),
            ("Fabric Weight", ("5.3 ounces", "6.1 ounces")),
            ("Pattern", ("Solid",)),
        ),
        sections=(
            ("Key Specs", ("Clothing Size", "Material", "Fit")),
            _GENERAL,
            ("Style", ("Sleeve Length", "Neckline", "Gender", "Pattern")),
            ("Fabric", ("Fabric Weight", "Care Instructions")),
        ),
        name_format="{Brand} - {Gender} {Series} {Neckline} T-Shirt - Size {Clothing Size} - {Color}",
        says={
            "Material": ("The {v} fabric feels soft.",),
            "Fit": ("The {v|lower} is flattering.",),
            "Neckline": ("I like the {v|lower} cut.",),
        },
        pros=("The fabric is soft and doesn't pill.", "It held its shape after several washes.",
              "The stitching looks durable.", "A great basic for layering."),
        cons=("It shrank a bit after the first wash.", "The fabric is thinner than I expected.",
              "The collar stretched out quickly."),
        description=("A wardrobe staple: the {Brand} {Series} tee in soft {Material}, cut in a {Fit} "
                     "with a {Neckline}."),
        features=(
            ("Soft fabric", "{Material} feels great all day."),
            ("Easy care", "{Care Instructions}, tumble dry low."),
            ("Everyday fit", "{Fit} with a {Neckline} collar."),
        ),
    ),
    _Category(
        name="Printers",
        noun="Printer",
        nouns=("printer",),
        plural=False,
        shape="printer",
        brands=(("Printra", "PT"), ("Kestrel", "KS"), ("Docuvia", "DV"), ("Inkwell", "IW")),
        lines=("OfficeJet", "Studio", "Envoy", "Workforce", "Quillset", "Lumen"),
        axes=(
            _Axis("Functions", "functions", ("Print Only", "Print/Copy/Scan", "Print/Copy/Scan/Fax"), 0.6),
            _Axis("Color", "color", ("White", "Black", "Heather Gray", "Royal Blue"), 0.4),
        ),
        fixed=(
            ("Printing Technology", ("Inkjet", "Laser")),
            ("Print Speed", ("22 pages per minute", "30 pages per minute", "40 pages per minute")),
            ("Maximum Print Resolution", ("4800 x 1200 dpi", "1200 x 1200 dpi")),
            ("Automatic Duplex Printing", ("Yes", "No")),
            ("Paper Capacity", ("100 sheets", "150 sheets", "250 sheets")),
            ("Connectivity", ("Wi-Fi, USB", "Wi-Fi, Ethernet, USB")),
            ("Mobile Printing", ("Yes",)),
            ("Monthly Duty Cycle", ("1000 pages", "15000 pages")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Functions", "Printing Technology", "Print Speed")),
            _GENERAL,
            ("Printing", ("Maximum Print Resolution", "Automatic Duplex Printing", "Monthly Duty Cycle")),
            ("Paper Handling", ("Paper Capacity",)),
            ("Connectivity", ("Connectivity", "Mobile Printing")),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Printing Technology} Printer ({Functions}) - {Color}",
        says={
            "Printing Technology": ("It's a {v|lower} printer and the prints are crisp.",),
            "Print Speed": ("It prints around {v}, plenty fast.",),
            "Paper Capacity": ("The {v} tray means fewer refills.",),
        },
        pros=("Prints come out crisp and clean.", "Setting it up on my home network was painless.",
              "Printing from my phone works well.", "It's quieter than my old one."),
        cons=("The cartridges are expensive.", "The app keeps asking me to sign in.", "Paper jams now and then.",
              "It takes a while to wake up."),
        description=("The {Brand} {Series} {Printing Technology} printer prints up to {Print Speed} at "
                     "{Maximum Print Resolution}, with easy mobile printing."),
        features=(
            ("Fast printing", "Up to {Print Speed}."),
            ("Big paper tray", "A {Paper Capacity} tray means fewer refills."),
            ("Connect your way", "{Connectivity} connections."),
        ),
    ),
    _Category(
        name="Coffee Makers",
        noun="Coffee Maker",
        nouns=("coffee maker", "machine"),
        plural=False,
        shape="coffee",
        brands=(("Cafeva", "CF"), ("Mornia", "MR"), ("Kestrel", "KS"), ("Aurion", "AU")),
        lines=("Brewline", "Daybreak", "Roastery", "Barista", "Percola", "Kettlebrook"),
        axes=(
            _Axis("Capacity", "cups", ("4 cups", "5 cups", "10 cups", "12 cups", "14 cups"), 0.4),
            _Axis("Wattage", "watts", ("900 watts", "1000 watts", "1200 watts", "1500 watts"), 0.2),
            _Axis("Color", "color", ("Onyx Black", "Stainless Steel", "Coral Red", "Arctic White", "Cream",
                                     "Teal"), 0.4),
        ),
        fixed=(
            ("Coffee Maker Type", ("Drip Coffee Maker", "Single-Serve and Carafe")),
            ("Carafe Material", ("Glass", "Thermal Stainless Steel")),
            ("Programmable", ("Yes", "No")),
            ("Automatic Shutoff", ("Yes",)),
            ("Brew Strength Control", ("Yes", "No")),
            ("Water Filter", ("Charcoal filter included", "Not included")),
            ("Product Height", ("14.2 inches", "15.1 inches")),
            _WARRANTY,
        ),
        sections=(
            ("Key Specs", ("Capacity", "Coffee Maker Type", "Wattage")),
            _GENERAL,
            ("Features", ("Carafe Material", "Programmable", "Automatic Shutoff", "Brew Strength Control",
                          "Water Filter")),
            ("Dimensions", ("Product Height",)),
            ("Warranty", ("Manufacturer's Warranty - Parts",)),
        ),
        name_format="{Brand} - {Series} {Capacity|cup} {Coffee Maker Type} - {Color}",
        says={
            "Carafe Material": ("The {v|lower} carafe pours cleanly.",),
            "Coffee Maker Type": ("As a {v|lower} it covers everything I need.",),
        },
        pros=("Coffee comes out hot and flavorful.", "The timer means coffee is ready when I wake up.",
              "It's easy to clean.", "It brews quickly.", "The buttons are simple to use."),
        cons=("The carafe drips when pouring.", "It's louder than expected.", "The water window is hard to see."),
        description=("Start every morning with café-quality coffee from the {Brand} {Series} "
                     "{Coffee Maker Type}, with a {Carafe Material} carafe."),
        features=(
            ("Brew your way", "Choose regular or bold flavor."),
            ("Keeps it hot", "{Carafe Material} carafe keeps coffee at the right temperature."),
            ("Set and forget", "Automatic shutoff for peace of mind."),
        ),
        variant_feature=("Capacity", "Brew for everyone", "Makes up to {Capacity} per pot."),
    ),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)

# Values the AMELI code drops when it builds the attribute vocabulary: never stated, never gold.
_DROPPED_VALUES = frozenset({"yes", "no", "none", "other"})


def is_informative_value(value: str) -> bool:
    """Whether AMELI's preprocessing keeps this attribute value (see AMELI_NOTES.md)."""
    v = value.strip().lower()
    return len(v) > 1 and v not in _DROPPED_VALUES and not v.isdigit()
