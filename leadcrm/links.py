from urllib.parse import urlencode, urlsplit, urlunsplit


def with_query(url: str, **params: str) -> str:
    """Add parameters to a URL's query, keeping its own query and putting them before any #fragment."""
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))
