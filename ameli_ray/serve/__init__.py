"""Online linking on Ray Serve: the HTTP API (`api`), the checks at the edge (`edge`), the three
stages over the linking core (`stages`, Ray-free) and the Serve application (`app`, the only
module here that imports Ray)."""
