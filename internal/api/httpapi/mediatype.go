package httpapi

// rust-teos decodes bodies with warp's json filter, which takes a Content-Type only if http's
// HeaderValue::to_str accepts it (visible ASCII or tab) and the mime crate (0.3.16 and 0.3.17
// parse alike) reads it as type "application", subtype "json". That parser is stricter than
// mime.ParseMediaType in some ways (no space before ';' or around '=', no empty quoted value,
// no backslash escapes, no tab, no non-ASCII) and looser in others (a repeated parameter, an
// empty unquoted value, and a "+suffix" that ends the subtype: "application/json+x" is json).
// warpJSON follows it so that the same headers get 415 as there.

// warpJSON reports whether warp's json filter accepts the Content-Type value ct.
func warpJSON(ct string) bool {
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; (c < 0x20 || c >= 0x7f) && c != '\t' {
			return false // HeaderValue::to_str fails: 415
		}
	}
	typ, sub, ok := parseMime(ct)
	return ok && asciiEqualFold(typ, "application") && asciiEqualFold(sub, "json")
}

// parseMime is the mime crate's parse: the type and subtype of s, or ok false where the
// crate returns an error. Parameters are checked, not kept.
func parseMime(s string) (typ, sub string, ok bool) {
	if s == "*/*" {
		return "*", "*", true
	}
	i := 0
	for ; ; i++ { // the type: one token or more, then '/'
		if i == len(s) {
			return "", "", false
		}
		if s[i] == '/' && i > 0 {
			break
		}
		if !isMimeToken(s[i]) {
			return "", "", false
		}
	}
	typ = s[:i]
	start := i + 1
	plus := -1
	for i = start; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+' && i > start:
			plus = i // the last '+' starts the suffix
		case c == ';' && i > start:
			if !mimeParams(s, i+1) {
				return "", "", false
			}
			return typ, subtype(s, start, plus, i), true
		case isMimeToken(c):
		default:
			return "", "", false
		}
	}
	return typ, subtype(s, start, plus, len(s)), true
}

// subtype is the crate's Mime::subtype: it ends at the suffix's '+', else at the ';' (or the end).
func subtype(s string, start, plus, end int) string {
	if plus >= 0 {
		end = plus
	}
	return s[start:end]
}

// mimeParams is the crate's params_from_str from s[i:], the byte after the first ';':
// name=value pairs separated by ';', spaces only before a name or after a quoted value.
func mimeParams(s string, i int) bool {
	for i < len(s) {
		if s[i] == ' ' { // before a name
			i++
			continue
		}
		start := i
		for ; ; i++ { // the name: tokens, then '='
			if i == len(s) {
				return false
			}
			c := s[i]
			if isMimeToken(c) {
				continue
			}
			if c == '=' && i > start {
				break
			}
			return false
		}
		i++
		if i < len(s) && s[i] == '"' {
			i++
			start = i
			for ; ; i++ { // the closing quote may not follow the opening one: it is then content
				if i == len(s) {
					return false
				}
				c := s[i]
				if c == '"' && i > start {
					break
				}
				if c <= 31 || c == 127 {
					return false
				}
			}
			for i++; ; i++ { // spaces, then ';' or the end
				if i == len(s) {
					return true
				}
				if s[i] == ';' {
					i++
					break
				}
				if s[i] != ' ' {
					return false
				}
			}
			continue
		}
		start = i
		for ; ; i++ { // an unquoted value: tokens (none at the end), then ';' or the end
			if i == len(s) {
				return true
			}
			c := s[i]
			if isMimeToken(c) {
				continue
			}
			if c == ';' && i > start {
				i++
				break
			}
			return false
		}
	}
	return true
}

// isMimeToken is the crate's TOKEN_MAP: RFC 7230's tchar.
func isMimeToken(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
