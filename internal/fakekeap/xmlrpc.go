package fakekeap

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// xmlValue is an XML-RPC <value>; a value without a type element is a string.
type xmlValue struct {
	String   *string    `xml:"string"`
	Int      *string    `xml:"int"`
	I4       *string    `xml:"i4"`
	I8       *string    `xml:"i8"`
	Boolean  *string    `xml:"boolean"`
	Double   *string    `xml:"double"`
	DateTime *string    `xml:"dateTime.iso8601"`
	Base64   *string    `xml:"base64"`
	Nil      *struct{}  `xml:"nil"`
	Struct   *xmlStruct `xml:"struct"`
	Array    *xmlArray  `xml:"array"`
	Text     string     `xml:",chardata"`
}

type xmlStruct struct {
	Members []struct {
		Name  string   `xml:"name"`
		Value xmlValue `xml:"value"`
	} `xml:"member"`
}

type xmlArray struct {
	Values []xmlValue `xml:"data>value"`
}

type methodCall struct {
	XMLName    xml.Name   `xml:"methodCall"`
	MethodName string     `xml:"methodName"`
	Params     []xmlValue `xml:"params>param>value"`
}

// decode turns v into string, int64, bool, float64, time.Time, []byte, nil, map[string]any or []any.
func (v xmlValue) decode() (any, error) {
	integer := cmp.Or(v.Int, v.I4, v.I8)
	switch {
	case v.String != nil:
		return *v.String, nil
	case integer != nil:
		return strconv.ParseInt(strings.TrimSpace(*integer), 10, 64)
	case v.Boolean != nil:
		switch strings.TrimSpace(*v.Boolean) {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
		return nil, fmt.Errorf("bad boolean %q", *v.Boolean)
	case v.Double != nil:
		return strconv.ParseFloat(strings.TrimSpace(*v.Double), 64)
	case v.DateTime != nil:
		for _, layout := range []string{"20060102T15:04:05", "2006-01-02T15:04:05", "20060102T15:04:05Z07:00", time.RFC3339} {
			if t, err := time.Parse(layout, strings.TrimSpace(*v.DateTime)); err == nil {
				return t, nil
			}
		}
		return nil, fmt.Errorf("bad dateTime.iso8601 %q", *v.DateTime)
	case v.Base64 != nil:
		return base64.StdEncoding.DecodeString(strings.TrimSpace(*v.Base64))
	case v.Nil != nil:
		return nil, nil
	case v.Struct != nil:
		m := map[string]any{}
		for _, member := range v.Struct.Members {
			x, err := member.Value.decode()
			if err != nil {
				return nil, err
			}
			m[member.Name] = x
		}
		return m, nil
	case v.Array != nil:
		a := []any{}
		for _, item := range v.Array.Values {
			x, err := item.decode()
			if err != nil {
				return nil, err
			}
			a = append(a, x)
		}
		return a, nil
	}
	return v.Text, nil
}

func encodeValue(b *bytes.Buffer, v any) {
	b.WriteString("<value>")
	switch x := v.(type) {
	case string:
		b.WriteString("<string>")
		_ = xml.EscapeText(b, []byte(x))
		b.WriteString("</string>")
	case int:
		fmt.Fprintf(b, "<i4>%d</i4>", x)
	case int64:
		fmt.Fprintf(b, "<i4>%d</i4>", x)
	case bool:
		fmt.Fprintf(b, "<boolean>%d</boolean>", map[bool]int{true: 1}[x])
	case float64:
		b.WriteString("<double>" + strconv.FormatFloat(x, 'f', -1, 64) + "</double>")
	case time.Time:
		b.WriteString("<dateTime.iso8601>" + x.Format("20060102T15:04:05") + "</dateTime.iso8601>")
	case []byte:
		b.WriteString("<base64>" + base64.StdEncoding.EncodeToString(x) + "</base64>")
	case map[string]any:
		b.WriteString("<struct>")
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b.WriteString("<member><name>")
			_ = xml.EscapeText(b, []byte(k))
			b.WriteString("</name>")
			encodeValue(b, x[k])
			b.WriteString("</member>")
		}
		b.WriteString("</struct>")
	case []any:
		b.WriteString("<array><data>")
		for _, item := range x {
			encodeValue(b, item)
		}
		b.WriteString("</data></array>")
	case nil:
		b.WriteString("<nil/>")
	default:
		_ = xml.EscapeText(b, []byte(fmt.Sprint(x)))
	}
	b.WriteString("</value>")
}

// rpcFault is an XML-RPC fault answer.
type rpcFault struct {
	code int
	msg  string
}

func (f *rpcFault) Error() string { return f.msg }

// fault is an Infusionsoft service fault, its string tagged like "[InvalidKey]Invalid Key".
func fault(tag, format string, args ...any) error {
	return &rpcFault{code: 2, msg: "[" + tag + "]" + fmt.Sprintf(format, args...)}
}

func writeXMLRPC(w http.ResponseWriter, result any, err error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><methodResponse>`)
	var f *rpcFault
	if errors.As(err, &f) {
		b.WriteString("<fault>")
		encodeValue(&b, map[string]any{"faultCode": f.code, "faultString": f.msg})
		b.WriteString("</fault>")
	} else {
		b.WriteString("<params><param>")
		encodeValue(&b, result)
		b.WriteString("</param></params>")
	}
	b.WriteString("</methodResponse>\n")
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write(b.Bytes())
}

func (s *Server) handleXMLRPC(w http.ResponseWriter, r *http.Request) { s.serveXMLRPC(w, r, "") }

// handleLegacyXMLRPC stands for https://{app}.infusionsoft.com/api/xmlrpc, where the first parameter is the key.
func (s *Server) handleLegacyXMLRPC(w http.ResponseWriter, r *http.Request) {
	app := chi.URLParam(r, "app")
	s.mu.Lock()
	known := len(s.legacy[strings.ToLower(app)]) > 0
	s.mu.Unlock()
	if !known {
		http.Error(w, "Not Found: no Infusionsoft application named "+app, http.StatusNotFound)
		return
	}
	s.gate(authNone)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveXMLRPC(w, r, app)
	})).ServeHTTP(w, r)
}

func (s *Server) serveXMLRPC(w http.ResponseWriter, r *http.Request, legacyApp string) {
	if s.xmlrpcRetired(w) {
		return
	}
	var call methodCall
	if err := xml.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&call); err != nil {
		writeXMLRPC(w, nil, &rpcFault{code: 0, msg: "Failed to parse XML-RPC request: " + err.Error()})
		return
	}
	args := make([]any, len(call.Params))
	for i, p := range call.Params {
		v, err := p.decode()
		if err != nil {
			writeXMLRPC(w, nil, &rpcFault{code: 0, msg: "Failed to parse XML-RPC request: " + err.Error()})
			return
		}
		args[i] = v
	}
	result, err := s.callXMLRPC(call.MethodName, args, legacyApp)
	writeXMLRPC(w, result, err)
}

type rpcMethod struct {
	keyed bool       // the first parameter is the API key
	sigs  [][]string // accepted parameter kinds
	fn    func(s *Server, args []any) (any, error)
}

func sigs(list ...string) [][]string {
	var out [][]string
	for _, l := range list {
		out = append(out, strings.Fields(l))
	}
	return out
}

var rpcMethods = map[string]rpcMethod{
	"DataService.echo":                  {sigs: sigs("any"), fn: func(_ *Server, a []any) (any, error) { return a[0], nil }},
	"DataService.getAppSetting":         {keyed: true, sigs: sigs("string string string"), fn: (*Server).rpcGetAppSetting},
	"DataService.query":                 {keyed: true, sigs: sigs("string string int int struct array", "string string int int struct array string bool"), fn: (*Server).rpcTableQuery},
	"DataService.queryWithOrderBy":      {keyed: true, sigs: sigs("string string int int struct array string bool"), fn: (*Server).rpcTableQuery},
	"DataService.findByField":           {keyed: true, sigs: sigs("string string int int string any array"), fn: (*Server).rpcTableFindByField},
	"DataService.count":                 {keyed: true, sigs: sigs("string string struct"), fn: (*Server).rpcTableCount},
	"DataService.load":                  {keyed: true, sigs: sigs("string string int array"), fn: (*Server).rpcTableLoad},
	"DataService.add":                   {keyed: true, sigs: sigs("string string struct"), fn: (*Server).rpcTableAdd},
	"DataService.update":                {keyed: true, sigs: sigs("string string int struct"), fn: (*Server).rpcTableUpdate},
	"DataService.delete":                {keyed: true, sigs: sigs("string string int"), fn: (*Server).rpcTableDelete},
	"ContactService.add":                {keyed: true, sigs: sigs("string struct"), fn: (*Server).rpcContactAdd},
	"ContactService.update":             {keyed: true, sigs: sigs("string int struct"), fn: (*Server).rpcContactUpdate},
	"ContactService.load":               {keyed: true, sigs: sigs("string int array"), fn: (*Server).rpcContactLoad},
	"ContactService.addWithDupCheck":    {keyed: true, sigs: sigs("string struct string"), fn: (*Server).rpcContactAddWithDupCheck},
	"ContactService.addToGroup":         {keyed: true, sigs: sigs("string int int"), fn: (*Server).rpcAddToGroup},
	"ContactService.removeFromGroup":    {keyed: true, sigs: sigs("string int int"), fn: (*Server).rpcRemoveFromGroup},
	"ContactService.findByEmail":        {keyed: true, sigs: sigs("string string array"), fn: (*Server).rpcFindByEmail},
	"ContactService.merge":              {keyed: true, sigs: sigs("string int int"), fn: (*Server).rpcMerge},
	"APIEmailService.optIn":             {keyed: true, sigs: sigs("string string string"), fn: func(s *Server, a []any) (any, error) { return s.rpcOpt(a, true) }},
	"APIEmailService.optOut":            {keyed: true, sigs: sigs("string string string"), fn: func(s *Server, a []any) (any, error) { return s.rpcOpt(a, false) }},
	"APIEmailService.getOptStatus":      {keyed: true, sigs: sigs("string string"), fn: (*Server).rpcOptStatus},
	"FunnelService.achieveGoal":         {keyed: true, sigs: sigs("string string string int"), fn: (*Server).rpcAchieveGoal},
	"ProductService.incrementInventory": {keyed: true, sigs: sigs("string int"), fn: func(s *Server, a []any) (any, error) { return s.rpcInventory(a, 1) }},
	"ProductService.decrementInventory": {keyed: true, sigs: sigs("string int"), fn: func(s *Server, a []any) (any, error) { return s.rpcInventory(a, -1) }},
	"InvoiceService.createBlankOrder":   {keyed: true, sigs: sigs("string int string date int int"), fn: (*Server).rpcCreateBlankOrder},
	"InvoiceService.addOrderItem":       {keyed: true, sigs: sigs("string int int int double int string string"), fn: (*Server).rpcAddOrderItem},
	"InvoiceService.addManualPayment":   {keyed: true, sigs: sigs("string int double date string string bool"), fn: (*Server).rpcAddManualPayment},
}

// argKind names an argument's type for signature matching, and as Apache XML-RPC's messages do.
func argKind(v any) (kind, javaType string) {
	switch v.(type) {
	case string:
		return "string", "java.lang.String"
	case int64:
		return "int", "java.lang.Integer"
	case bool:
		return "bool", "java.lang.Boolean"
	case float64:
		return "double", "java.lang.Double"
	case time.Time:
		return "date", "java.util.Date"
	case []byte:
		return "base64", "[B"
	case map[string]any:
		return "struct", "java.util.HashMap"
	case []any:
		return "array", "[Ljava.lang.Object;"
	}
	return "nil", "null"
}

func (s *Server) callXMLRPC(method string, args []any, legacyApp string) (any, error) {
	m, ok := rpcMethods[method]
	if !ok {
		return nil, &rpcFault{code: 0, msg: "No such handler: " + method}
	}
	matches := slices.ContainsFunc(m.sigs, func(sig []string) bool {
		if len(sig) != len(args) {
			return false
		}
		for i, a := range args {
			if k, _ := argKind(a); sig[i] != "any" && sig[i] != k {
				return false
			}
		}
		return true
	})
	if !matches {
		types := make([]string, len(args))
		for i, a := range args {
			_, types[i] = argKind(a)
		}
		return nil, &rpcFault{code: 0, msg: "No method matching arguments: " + strings.Join(types, ", ")}
	}
	if legacyApp != "" && m.keyed {
		s.mu.Lock()
		valid := s.legacyKeyLocked(legacyApp, args[0].(string))
		s.mu.Unlock()
		if !valid {
			return nil, fault("InvalidKey", "Invalid Key")
		}
	}
	return m.fn(s, args)
}

func (s *Server) rpcGetAppSetting(args []any) (any, error) {
	settings := map[string]string{
		"Contact.optiontypes":   "Prospect,Customer,Partner,Vendor",
		"Application.appname":   AppName,
		"Application.time_zone": "America/New_York",
		"Order.defaultcurrency": "USD",
	}
	return settings[args[1].(string)+"."+args[2].(string)], nil
}

type legacyField struct {
	get func(c *contact) any
	set func(c *contact, v string) // nil for read-only fields
}

func scalarField(key string) legacyField {
	return legacyField{
		get: func(c *contact) any { return nullable(c.str(key)) },
		set: func(c *contact, v string) { c.scalars[key] = v },
	}
}

func emailField(field string) legacyField {
	return legacyField{
		get: func(c *contact) any { return nullable(c.email(field)) },
		set: func(c *contact, v string) {
			c.emails = putField(c.emails, emailAddress{Email: v, Field: field}, func(e emailAddress) string { return e.Field }, v == "")
		},
	}
}

func phoneField(field string) legacyField {
	return legacyField{
		get: func(c *contact) any {
			for _, p := range c.phones {
				if p.Field == field {
					return nullable(p.Number)
				}
			}
			return nil
		},
		set: func(c *contact, v string) {
			c.phones = putField(c.phones, phoneNumber{Number: v, Field: field}, func(p phoneNumber) string { return p.Field }, v == "")
		},
	}
}

// billingField maps a legacy address column to the BILLING address.
func billingField(part func(*address) *string) legacyField {
	return legacyField{
		get: func(c *contact) any {
			for _, a := range c.addresses {
				if a.Field == "BILLING" {
					return nullable(*part(&a))
				}
			}
			return nil
		},
		set: func(c *contact, v string) {
			a := address{Field: "BILLING"}
			for _, x := range c.addresses {
				if x.Field == "BILLING" {
					a = x
				}
			}
			*part(&a) = v
			c.addresses = putField(c.addresses, a, func(a address) string { return a.Field }, a.empty())
		},
	}
}

// countryField maps the legacy Country column, which takes names as well as codes.
func countryField() legacyField {
	f := billingField(func(a *address) *string { return &a.CountryCode })
	set := f.set
	f.set = func(c *contact, v string) {
		for code, country := range countries {
			if strings.EqualFold(country.name, v) {
				v = code
			}
		}
		set(c, v)
	}
	return f
}

// legacyContactFields are the Contact table's fields the fake knows, by their XML-RPC names.
var legacyContactFields = map[string]legacyField{
	"Id":             {get: func(c *contact) any { return c.id }},
	"DateCreated":    {get: func(c *contact) any { return c.created }},
	"LastUpdated":    {get: func(c *contact) any { return c.updated }},
	"FirstName":      scalarField("given_name"),
	"LastName":       scalarField("family_name"),
	"MiddleName":     scalarField("middle_name"),
	"Nickname":       scalarField("preferred_name"),
	"Title":          scalarField("prefix"),
	"Suffix":         scalarField("suffix"),
	"JobTitle":       scalarField("job_title"),
	"Website":        scalarField("website"),
	"ContactType":    scalarField("contact_type"),
	"SpouseName":     scalarField("spouse_name"),
	"TimeZone":       scalarField("time_zone"),
	"Email":          emailField("EMAIL1"),
	"EmailAddress2":  emailField("EMAIL2"),
	"EmailAddress3":  emailField("EMAIL3"),
	"Phone1":         phoneField("PHONE1"),
	"Phone2":         phoneField("PHONE2"),
	"Phone3":         phoneField("PHONE3"),
	"Phone4":         phoneField("PHONE4"),
	"Phone5":         phoneField("PHONE5"),
	"StreetAddress1": billingField(func(a *address) *string { return &a.Line1 }),
	"StreetAddress2": billingField(func(a *address) *string { return &a.Line2 }),
	"City":           billingField(func(a *address) *string { return &a.Locality }),
	"State":          billingField(func(a *address) *string { return &a.Region }),
	"PostalCode":     billingField(func(a *address) *string { return &a.PostalCode }),
	"ZipFour1":       billingField(func(a *address) *string { return &a.ZipFour }),
	"Country":        countryField(),
	"Groups": {get: func(c *contact) any {
		ids := make([]string, 0, len(c.tags))
		for id := range c.tags {
			ids = append(ids, strconv.FormatInt(id, 10))
		}
		slices.SortFunc(ids, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b)) })
		return nullable(strings.Join(ids, ","))
	}},
}

func legacyString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.Format("2006-01-02 15:04:05")
	}
	return fmt.Sprint(v)
}

// setLegacyFieldsLocked writes data to c, or changes nothing when a field is unknown.
func (s *Server) setLegacyFieldsLocked(c *contact, data map[string]any) error {
	for name := range data {
		f, ok := legacyContactFields[name]
		if !ok {
			return fault("NoFieldFound", "No field found: Contact.%s", name)
		}
		if f.set == nil {
			return fault("InvalidParameter", "Field Contact.%s is read-only", name)
		}
	}
	for name, v := range data {
		legacyContactFields[name].set(c, legacyString(v))
	}
	c.updated = s.stamp()
	return nil
}

// loadFields returns the named fields of c that have a value, as Infusionsoft leaves out empty ones.
func loadFields(c *contact, names []any) (map[string]any, error) {
	out := map[string]any{}
	for _, n := range names {
		name, _ := n.(string)
		f, ok := legacyContactFields[name]
		if !ok {
			return nil, fault("NoFieldFound", "No field found: Contact.%v", n)
		}
		if v := f.get(c); v != nil {
			out[name] = v
		}
	}
	return out, nil
}

func (s *Server) rpcContactAdd(args []any) (any, error) {
	s.mu.Lock()
	c := &contact{id: s.nextIDLocked("contact"), scalars: map[string]any{"source_type": "API"}, tags: map[int64]time.Time{}, created: s.stamp()}
	if err := s.setLegacyFieldsLocked(c, args[1].(map[string]any)); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.contacts[c.id] = c
	s.mu.Unlock()
	s.notify("contact.add", c.id)
	return c.id, nil
}

func (s *Server) rpcContactUpdate(args []any) (any, error) {
	id := args[1].(int64)
	s.mu.Lock()
	c := s.contacts[id]
	err := fault("RecordNotFound", "Record was not found: Contact %d", id)
	if c != nil {
		err = s.setLegacyFieldsLocked(c, args[2].(map[string]any))
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s.notify("contact.edit", id)
	return id, nil
}

func (s *Server) rpcContactLoad(args []any) (any, error) {
	id := args[1].(int64)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.contacts[id]
	if c == nil {
		return nil, fault("RecordNotFound", "Record was not found: Contact %d", id)
	}
	return loadFields(c, args[2].([]any))
}

func (s *Server) rpcContactAddWithDupCheck(args []any) (any, error) {
	data, check := args[1].(map[string]any), args[2].(string)
	if check != "Email" && check != "EmailAndName" && check != "EmailAndNameAndCompany" {
		return nil, fault("InvalidParameter", "Invalid duplicate check type %q: use Email, EmailAndName or EmailAndNameAndCompany", check)
	}
	email := legacyString(data["Email"])
	s.mu.Lock()
	var found *contact
	for _, c := range s.sortedContactsLocked() {
		if email != "" && c.hasEmail(email) && (check == "Email" ||
			strings.EqualFold(c.str("given_name"), legacyString(data["FirstName"])) &&
				strings.EqualFold(c.str("family_name"), legacyString(data["LastName"]))) {
			found = c
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return s.rpcContactAdd(args[:2])
	}
	return s.rpcContactUpdate([]any{args[0], found.id, data})
}

func (s *Server) rpcAddToGroup(args []any) (any, error) {
	return s.changeGroup(args[1].(int64), args[2].(int64), true)
}

func (s *Server) rpcRemoveFromGroup(args []any) (any, error) {
	return s.changeGroup(args[1].(int64), args[2].(int64), false)
}

func (s *Server) changeGroup(contactID, tagID int64, apply bool) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.contacts[contactID]
	switch {
	case c == nil:
		return nil, fault("RecordNotFound", "Record was not found: Contact %d", contactID)
	case s.tags[tagID] == nil:
		return nil, fault("RecordNotFound", "Record was not found: ContactGroup %d", tagID)
	case apply:
		s.applyTagLocked(c, tagID)
	default:
		delete(c.tags, tagID)
	}
	return true, nil
}

func mapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func queryMatch(have, want any) bool {
	w := legacyString(want)
	if w == "~null~" {
		return have == nil
	}
	h := strings.ToLower(legacyString(have))
	w = strings.ToLower(w)
	if !strings.Contains(w, "%") {
		return h == w
	}
	parts := strings.Split(w, "%")
	if !strings.HasPrefix(h, parts[0]) || !strings.HasSuffix(h[len(parts[0]):], parts[len(parts)-1]) {
		return false
	}
	rest := h[len(parts[0]) : len(h)-len(parts[len(parts)-1])]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return true
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case int64:
		if y, ok := b.(int64); ok {
			return cmp.Compare(x, y)
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	}
	return strings.Compare(strings.ToLower(legacyString(a)), strings.ToLower(legacyString(b)))
}
