package frontdoor

import (
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// qrBanner renders url as a QR code of Unicode half blocks (two modules per
// character row), dark on light so phones read it on dark terminals too.
// Banners keep UTF-8, unlike keyboard-interactive instructions.
func qrBanner(url string) string {
	q, err := qrcode.New(url, qrcode.Low)
	if err != nil {
		return ""
	}
	art := q.ToSmallString(true)
	return "Scan to sign in:\r\n" + strings.ReplaceAll(art, "\n", "\r\n")
}
