package serdejson

// The decoder is checked against real serde_json output. testdata/serde_json_1.0.138.txt
// holds answers of testdata/serde-oracle (the serde, serde_json and hex versions rust-teos
// locks) for a varied set of bodies; TestSerdeCorpus replays them. To compare against the
// oracle directly and regenerate the corpus, build it and run
//
//	TEOS_SERDE_ORACLE=path/to/serde-oracle go test ./internal/serdejson -run Oracle
//
// Rust's char tables may be newer than Go's: a code point only one of them knows prints
// escaped by the other, so such cases are left out of the corpus.

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const corpusFile = "testdata/serde_json_1.0.138.txt"

// The request structs of rust-teos's public API, named as there (the names appear in messages).
var (
	registerSpec = &Struct{Name: "RegisterRequest", Fields: []Field{
		{Name: "user_id", Kind: KindHex},
	}}
	appointmentSpec = &Struct{Name: "Appointment", Fields: []Field{
		{Name: "locator", Kind: KindHex},
		{Name: "encrypted_blob", Kind: KindHex},
		{Name: "to_self_delay", Kind: KindU32},
	}}
	addAppointmentSpec = &Struct{Name: "AddAppointmentRequest", Fields: []Field{
		{Name: "appointment", Kind: KindStruct, Optional: true, Sub: appointmentSpec},
		{Name: "signature", Kind: KindString},
	}}
	getAppointmentSpec = &Struct{Name: "GetAppointmentRequest", Fields: []Field{
		{Name: "locator", Kind: KindHex},
		{Name: "signature", Kind: KindString},
	}}
	getSubscriptionInfoSpec = &Struct{Name: "GetSubscriptionInfoRequest", Fields: []Field{
		{Name: "signature", Kind: KindString},
	}}
)

// describe renders what the decoder made of body in the oracle's format.
func describe(endpoint string, body []byte) string {
	specs := map[string]*Struct{"register": registerSpec, "add": addAppointmentSpec, "get": getAppointmentSpec, "sub": getSubscriptionInfoSpec}
	vals, err := Decode(body, specs[endpoint])
	if err != nil {
		return "ERR " + err.String()
	}
	bs := func(b []byte) string {
		parts := make([]string, len(b))
		for i, x := range b {
			parts[i] = fmt.Sprint(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	var out string
	switch endpoint {
	case "register":
		out = fmt.Sprintf("OK RegisterRequest { user_id: %s }", bs(vals[0].Bytes))
	case "add":
		a := "None"
		if v := vals[0]; v != nil && !v.Null {
			a = fmt.Sprintf("Some(Appointment { locator: %s, encrypted_blob: %s, to_self_delay: %d })", bs(v.Sub[0].Bytes), bs(v.Sub[1].Bytes), v.Sub[2].U32)
		}
		out = fmt.Sprintf("OK AddAppointmentRequest { appointment: %s, signature: %s }", a, rustStrDebug(vals[1].Str))
	case "get":
		out = fmt.Sprintf("OK GetAppointmentRequest { locator: %s, signature: %s }", bs(vals[0].Bytes), rustStrDebug(vals[1].Str))
	default:
		out = fmt.Sprintf("OK GetSubscriptionInfoRequest { signature: %s }", rustStrDebug(vals[0].Str))
	}
	return strings.ReplaceAll(out, "\n", "\\n")
}

func TestSerdeCorpus(t *testing.T) {
	f, err := os.Open(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	n := 0
	for sc.Scan() {
		endpoint, rest, _ := strings.Cut(sc.Text(), " ")
		bodyHex, want, _ := strings.Cut(rest, " ")
		body, err := hex.DecodeString(bodyHex)
		if err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if got := describe(endpoint, body); got != want {
			t.Errorf("%s %q\n got: %s\nwant: %s", endpoint, body, got, want)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 500 {
		t.Fatalf("corpus has %d cases, want at least 500", n)
	}
}

type oracleCase struct {
	endpoint string
	body     []byte
}

func oraclePath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("TEOS_SERDE_ORACLE")
	if path == "" {
		t.Skip("TEOS_SERDE_ORACLE not set")
	}
	return path
}

// askOracle runs the reference decoder at path on every case.
func askOracle(t *testing.T, path string, cases []oracleCase) []string {
	t.Helper()
	var in strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&in, "%s %s\n", c.endpoint, hex.EncodeToString(c.body))
	}
	cmd := exec.Command(path)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("oracle answered %d lines for %d cases", len(lines), len(cases))
	}
	return lines
}

func oracleCases(seed int64, n int) []oracleCase {
	r := rand.New(rand.NewSource(seed))
	endpoints := []string{"register", "add", "get", "sub"}
	var cases []oracleCase
	for range n {
		ep := endpoints[r.Intn(len(endpoints))]
		cases = append(cases, oracleCase{ep, genBody(r, ep)})
	}
	for _, s := range append(append([]string{}, weird...), toks...) {
		for _, ep := range endpoints {
			for _, tmpl := range []string{"%s", `{"user_id": %s}`, `{"signature": %s}`, `{"locator": %s}`, `{"appointment": %s}`, `{"appointment": {"to_self_delay": %s}}`} {
				cases = append(cases, oracleCase{ep, []byte(fmt.Sprintf(tmpl, s))})
			}
		}
	}
	return cases
}

func TestOracleDiff(t *testing.T) {
	path := oraclePath(t)
	cases := oracleCases(7, 500000)
	answers := askOracle(t, path, cases)
	fails := 0
	for i, want := range answers {
		if got := describe(cases[i].endpoint, cases[i].body); got != want && !strings.Contains(want+got, "\\u{") {
			if fails++; fails <= 20 {
				t.Errorf("%s %q\n rust: %s\n   go: %s", cases[i].endpoint, cases[i].body, want, got)
			}
		}
	}
	t.Logf("%d cases, %d differ", len(cases), fails)
}

// TestOracleCorpus rewrites the corpus: a few cases per kind of answer.
func TestOracleCorpus(t *testing.T) {
	path := oraclePath(t)
	cases := oracleCases(11, 300000)
	answers := askOracle(t, path, cases)
	quoted := regexp.MustCompile("`[^`]*`|\"[^\"]*\"|'[^']*'|[0-9]+|\\[.*")
	seen := map[string]int{}
	var corpus strings.Builder
	for i, want := range answers {
		c := cases[i]
		if len(c.body) > 120 || strings.Contains(want, "\\u{") || describe(c.endpoint, c.body) != want {
			continue
		}
		kind := quoted.ReplaceAllString(strings.SplitN(want, " at line", 2)[0], "")
		limit := 3
		if strings.HasPrefix(kind, "OK") {
			kind, limit = kind[:10], 10
		}
		if key := c.endpoint + " " + kind; seen[key] < limit {
			seen[key]++
			fmt.Fprintf(&corpus, "%s %s %s\n", c.endpoint, hex.EncodeToString(c.body), want)
		}
	}
	if err := os.WriteFile(corpusFile, []byte(corpus.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Body generator: tokens, odd values and mutations of valid bodies.

var toks = []string{`{`, `}`, `[`, `]`, `:`, `,`, ` `, "\n", "\t", `"user_id"`, `"locator"`, `"signature"`, `"appointment"`, `"encrypted_blob"`,
	`"to_self_delay"`, `"x"`, `"00"`, `"0a"`, `"a"`, `"zz"`, `""`, `"c69517f00d9482e6b1c41639f9bdfd5c"`, `0`, `-0`, `1`, `-1`, `1.5`, `1e400`, `-1e400`, `1e-400`,
	`4294967295`, `4294967296`, `18446744073709551615`, `18446744073709551616`, `-9223372036854775808`, `-9223372036854775809`, `01`, `1.`, `1e`, `1e+`, `-`, `-a`,
	`null`, `true`, `false`, `nul`, `tru`, `nulx`, `"\u00e9"`, `"\ud800"`, `"\ud800\udc00"`, `"\udc00"`, `"\ud800\u0041"`, `"\ud800x"`, `"\x"`, `"\u12"`, `"\u12g4"`,
	"\"\x01\"", "\"\xff\xfe\"", "\"é\"", `"\"`, `"\\"`, "\"\u00e9aa\"", `"Z0"`, `"0Z"`, `123456789012345678901234567890`, `1.7976931348623157e308`, `2e308`, `0.1e1`, `1E2`, `-0.0`, "\"\u0301a\""}

var weird = []string{`"\u0301"`, `"\u200b"`, `"\u00a0"`, `"\u2028"`, `"😀"`, `"'"`, `"\u007f"`, `"\u0000"`, `"a\"b"`, `"\\"`, `"\t\n"`, "\"\u0301x\"", "\"\u00ad\"",
	`"\u00e9"`, `"\ufeff"`, `"\ud83d\ude00"`, `"é"`, `"ÿ"`, `"\u0085"`, `1e16`, `1e15`, `123.456`, `0.00001`, `0.0001`, `1e-5`, `-1.5e-7`, `9007199254740993`, `1e308`, `1.7976931348623159e308`,
	`0.1e309`, `1000000000000000000000e-2`, `4.9e-324`, `2.5e-324`, `1e-400`, `0e99999999999`, `1e-99999999999`, `123456789012345678901.5e3`,
	`"éa"`, `"é0"`, `"\u0001a"`, `"a'"`, `"ÿÿ"`, `"\u00a0a"`, `"\u0301a"`, `"\u00ada"`, `"\u0085a"`}

var templates = map[string][]string{
	"register": {`{"user_id": "020dea894c967319407265764aba31bdef75d463f96800f34dd6df61380d82dfc0"}`, `["020dea894c967319407265764aba31bdef75d463f96800f34dd6df61380d82dfc0"]`},
	"add": {`{"appointment": {"locator": "c69517f00d9482e6b1c41639f9bdfd5c", "encrypted_blob": "00ff", "to_self_delay": 42}, "signature": "abc"}`,
		`{"signature": "abc", "x": [1, {"y": null}], "appointment": {"to_self_delay": 4294967295, "encrypted_blob": "", "locator": "C69517F00D9482E6B1C41639F9BDFD5C"}}`,
		`[["c69517f00d9482e6b1c41639f9bdfd5c", "00", 1], "s"]`},
	"get": {`{"locator": "c69517f00d9482e6b1c41639f9bdfd5c", "signature": "abc"}`},
	"sub": {`{"signature": "abc"}`, `{"signature": "a\u00e9\ud83d\ude00"}`},
}

func mutate(r *rand.Rand, s string) []byte {
	b := []byte(s)
	n := 1 + r.Intn(2)
	for i := 0; i < n && len(b) > 0; i++ {
		p := r.Intn(len(b))
		switch r.Intn(6) {
		case 0:
			b = append(b[:p], b[p+1:]...)
		case 1:
			ins := []byte(toks[r.Intn(len(toks))])
			b = append(b[:p], append(ins, b[p:]...)...)
		case 2:
			j := strings.Index(string(b[p:]), ":")
			if j < 0 {
				continue
			}
			k := p + j + 1
			e := k
			for e < len(b) && b[e] != ',' && b[e] != '}' {
				e++
			}
			pool := toks
			if r.Intn(2) == 0 {
				pool = weird
			}
			b = append(b[:k], append([]byte(" "+pool[r.Intn(len(pool))]), b[e:]...)...)
		case 3:
			b = b[:p]
		case 4:
			b[p] = "{}[]:,\"\\ \n0aZ-e."[r.Intn(15)]
		case 5:
			b = append([]byte(`{"user_id":"00","signature":"s",`), b[1:]...)
		}
	}
	return b
}

func genBody(r *rand.Rand, ep string) []byte {
	if r.Intn(2) == 0 {
		t := templates[ep]
		return mutate(r, t[r.Intn(len(t))])
	}
	var sb strings.Builder
	switch r.Intn(3) {
	case 0:
		n := r.Intn(14)
		for i := 0; i < n; i++ {
			sb.WriteString(toks[r.Intn(len(toks))])
		}
	default:
		fields := []string{"user_id", "locator", "signature", "appointment", "encrypted_blob", "to_self_delay", "x"}
		val := func(depth int) string {
			if depth < 2 && r.Intn(4) == 0 {
				var in strings.Builder
				in.WriteString("{")
				m := r.Intn(4)
				for j := 0; j < m; j++ {
					if j > 0 {
						in.WriteString(",")
					}
					fmt.Fprintf(&in, `"%s": %s`, fields[r.Intn(len(fields))], toks[9+r.Intn(len(toks)-9)])
				}
				in.WriteString("}")
				return in.String()
			}
			return toks[9+r.Intn(len(toks)-9)]
		}
		open, close := "{", "}"
		if r.Intn(6) == 0 {
			open, close = "[", "]"
		}
		sb.WriteString(open)
		m := r.Intn(4)
		for j := 0; j < m; j++ {
			if j > 0 {
				sb.WriteString([]string{",", ", ", " ,", ",,", ""}[r.Intn(5)])
			}
			if open == "{" {
				fmt.Fprintf(&sb, `"%s"%s`, fields[r.Intn(len(fields))], []string{":", " : ", "", ","}[r.Intn(4)])
			}
			sb.WriteString(val(1))
		}
		sb.WriteString(close)
		if r.Intn(5) == 0 {
			sb.WriteString(toks[r.Intn(len(toks))])
		}
	}
	b := []byte(sb.String())
	if len(b) > 0 && r.Intn(4) == 0 {
		b = b[:r.Intn(len(b))]
	}
	return b
}

// A KindRawList field keeps the first MaxItems elements, counts them all and checks the syntax
// of all of them, kept or not.
func TestRawListMaxItems(t *testing.T) {
	spec := func(max int) *Struct {
		return &Struct{Name: "Batch", Fields: []Field{{Name: "items", Kind: KindRawList, MaxItems: max}}}
	}
	body := []byte(`{"items": [1, {"a": [2]}, "x" ,null]}`)
	for _, tc := range []struct {
		max  int
		want []string
	}{
		{0, []string{`1`, `{"a": [2]}`, `"x"`, `null`}},
		{2, []string{`1`, `{"a": [2]}`}},
		{4, []string{`1`, `{"a": [2]}`, `"x"`, `null`}},
	} {
		vals, err := Decode(body, spec(tc.max))
		if err != nil {
			t.Fatalf("MaxItems %d: %v", tc.max, err)
		}
		got := make([]string, len(vals[0].Raw))
		for i, r := range vals[0].Raw {
			got[i] = string(r)
		}
		if vals[0].Items != 4 || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("MaxItems %d: %d items %q, want 4 items %q", tc.max, vals[0].Items, got, tc.want)
		}
	}
	bad := []byte(`{"items": [1, 2, 3, [4,]]}`) // the error is in the 4th item
	for _, max := range []int{0, 1} {
		if _, err := Decode(bad, spec(max)); err == nil || err.String() != "expected value at line 1 column 24" {
			t.Errorf("MaxItems %d: %v, want the syntax error past the kept items", max, err)
		}
	}
}

// MaxItems changes only how many elements are kept: the error, the count and the kept
// elements are those of a decode that keeps them all.
func FuzzRawListMaxItems(f *testing.F) {
	for _, s := range []string{`{"items": [1, {"a": [2]}, "x" ,null]}`, `{"items": [1, 2, 3, [4,]]}`, `{"items": []}`,
		`{"items": [[[]], {}, "\u00e9", -1.5e3, true], "x": [1]}`, `{"items": [1 2]}`, `{"items": [1,`} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, body []byte, max uint8) {
		spec := func(max int) *Struct {
			return &Struct{Name: "Batch", Fields: []Field{{Name: "items", Kind: KindRawList, MaxItems: max}}}
		}
		all, errAll := Decode(body, spec(0))
		some, errSome := Decode(body, spec(int(max)))
		if (errAll == nil) != (errSome == nil) || (errAll != nil && errAll.String() != errSome.String()) {
			t.Fatalf("%q: error %v with all kept, %v with MaxItems %d", body, errAll, errSome, max)
		}
		if errAll != nil {
			return
		}
		a, s := all[0], some[0]
		if a.Items != s.Items || a.Items != len(a.Raw) || (max > 0 && len(s.Raw) != min(int(max), a.Items)) {
			t.Fatalf("%q: %d items (%d kept), %d with MaxItems %d (%d kept)", body, a.Items, len(a.Raw), s.Items, max, len(s.Raw))
		}
		for i := range s.Raw {
			if string(s.Raw[i]) != string(a.Raw[i]) {
				t.Fatalf("%q: item %d %q, want %q", body, i, s.Raw[i], a.Raw[i])
			}
		}
	})
}
