"""QR codes drawn here, as inline SVG: the key never leaves the server for a chart service."""

import re

import qrcode
from qrcode.image.svg import SvgPathImage


def qr_svg(data: str) -> str:
    code = qrcode.QRCode(border=2, image_factory=SvgPathImage)
    code.add_data(data)
    code.make(fit=True)
    svg: str = code.make_image().to_string(encoding="unicode")
    # Sized by the page (CSS), not in millimetres.
    return re.sub(r'^<svg width="[^"]*" height="[^"]*"', '<svg role="img" aria-label="QR code"', svg)
