package fakekeap

import (
	"cmp"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The rest of Keap's XML-RPC as it answered before the sunset (31 December
// 2026), over the fake's records: DataService on the tables the bridge
// serves, ContactService's other methods, APIEmailService, FunnelService,
// ProductService and InvoiceService. It is written apart from connectord's
// bridge (internal/xmlrpcbridge) on purpose: the bridge's differential test
// runs the same calls against both, and a shared mapping would prove nothing.

// SetXMLRPC turns the fake's XML-RPC on or off. Off, it answers as Keap's
// will after 31 December 2026: 410 Gone, for every XML-RPC path.
func (s *Server) SetXMLRPC(on bool) { s.xmlrpcOff.Store(!on) }

// xmlrpcRetired writes the answer of a retired XML-RPC and reports whether it did.
func (s *Server) xmlrpcRetired(w http.ResponseWriter) bool {
	if !s.xmlrpcOff.Load() {
		return false
	}
	writeMessage(w, http.StatusGone, "Keap's XML-RPC API was turned off on 31 December 2026: use REST v2 (/crm/rest/v2)")
	return true
}

// xmlTable is one XML-RPC table: its rows as XML-RPC shows them (only
// fields with a value), ordered by Id, and how records are written.
type xmlTable struct {
	fields []string
	rows   func(s *Server) []map[string]any
	add    func(s *Server, data map[string]any) (int64, error)
	update func(s *Server, id int64, data map[string]any) error
	delete func(s *Server, id int64) bool
}

var xmlTables = map[string]xmlTable{
	"Contact": {
		fields: slices.Sorted(func(yield func(string) bool) {
			for k := range legacyContactFields {
				if !yield(k) {
					return
				}
			}
		}),
		rows: func(s *Server) []map[string]any {
			var out []map[string]any
			for _, c := range s.sortedContactsLocked() {
				row := map[string]any{}
				for name, f := range legacyContactFields {
					if v := f.get(c); v != nil {
						row[name] = v
					}
				}
				out = append(out, row)
			}
			return out
		},
		add: func(s *Server, data map[string]any) (int64, error) {
			c := &contact{id: s.nextIDLocked("contact"), scalars: map[string]any{"source_type": "API"}, tags: map[int64]time.Time{}, created: s.stamp()}
			if err := s.setLegacyFieldsLocked(c, data); err != nil {
				s.lastID["contact"]--
				return 0, err
			}
			s.contacts[c.id] = c
			return c.id, nil
		},
		update: func(s *Server, id int64, data map[string]any) error {
			c := s.contacts[id]
			if c == nil {
				return fault("RecordNotFound", "Record was not found: Contact %d", id)
			}
			return s.setLegacyFieldsLocked(c, data)
		},
		delete: func(s *Server, id int64) bool {
			_, ok := s.contacts[id]
			delete(s.contacts, id)
			return ok
		},
	},
	"ContactGroup": {
		fields: []string{"Id", "GroupName", "GroupDescription", "GroupCategoryId"},
		rows: func(s *Server) []map[string]any {
			var out []map[string]any
			for _, t := range sortedByID(s.tags) {
				out = append(out, compactRow(map[string]any{"Id": t.id, "GroupName": t.name, "GroupDescription": t.description, "GroupCategoryId": t.categoryID}))
			}
			return out
		},
		add: func(s *Server, data map[string]any) (int64, error) {
			t := &tag{created: s.stamp(), updated: s.stamp()}
			if err := setTagFields(t, data); err != nil {
				return 0, err
			}
			t.id = s.nextIDLocked("tag")
			s.tags[t.id] = t
			return t.id, nil
		},
		update: func(s *Server, id int64, data map[string]any) error {
			t := s.tags[id]
			if t == nil {
				return fault("RecordNotFound", "Record was not found: ContactGroup %d", id)
			}
			return setTagFields(t, data)
		},
		delete: func(s *Server, id int64) bool {
			_, ok := s.tags[id]
			delete(s.tags, id)
			for _, c := range s.contacts {
				delete(c.tags, id)
			}
			return ok
		},
	},
	"ContactGroupAssign": {
		fields: []string{"ContactId", "GroupId", "ContactGroup", "DateCreated", "Contact.FirstName", "Contact.LastName", "Contact.Email"},
		rows: func(s *Server) []map[string]any {
			var out []map[string]any
			for _, c := range s.sortedContactsLocked() {
				ids := make([]int64, 0, len(c.tags))
				for id := range c.tags {
					ids = append(ids, id)
				}
				slices.SortFunc(ids, func(a, b int64) int { return cmp.Or(c.tags[a].Compare(c.tags[b]), cmp.Compare(a, b)) })
				for _, id := range ids {
					name := ""
					if t := s.tags[id]; t != nil {
						name = t.name
					}
					out = append(out, compactRow(map[string]any{"ContactId": c.id, "GroupId": id, "ContactGroup": name, "DateCreated": c.tags[id],
						"Contact.FirstName": c.str("given_name"), "Contact.LastName": c.str("family_name"), "Contact.Email": c.email("EMAIL1")}))
				}
			}
			return out
		},
	},
	"Company": {
		fields: []string{"Id", "Company", "Email", "Phone1", "Website", "City", "State", "DateCreated"},
		rows: func(s *Server) []map[string]any {
			var out []map[string]any
			for _, c := range sortedByID(s.companies) {
				addr, _ := c.fields["address"].(map[string]any)
				out = append(out, compactRow(map[string]any{"Id": c.id, "Company": c.fields["company_name"], "Email": c.fields["email_address"],
					"Phone1": c.fields["phone_number"], "Website": c.fields["website"], "City": addr["locality"], "State": addr["region"], "DateCreated": c.created}))
			}
			return out
		},
		add: func(s *Server, data map[string]any) (int64, error) {
			fields := map[string]any{}
			for k, v := range data {
				switch k {
				case "Company":
					fields["company_name"] = legacyString(v)
				case "Email":
					fields["email_address"] = legacyString(v)
				case "Website":
					fields["website"] = legacyString(v)
				default:
					return 0, fault("NoFieldFound", "No field found: Company.%s", k)
				}
			}
			c := &company{id: s.nextIDLocked("company"), fields: fields, created: s.stamp()}
			s.companies[c.id] = c
			return c.id, nil
		},
	},
	"Product": v2Table("products", []string{"Id", "ProductName", "Sku", "ShortDescription", "ProductPrice", "Status", "Inventory"},
		func(r map[string]any) map[string]any {
			price, _ := number(r["price"].(map[string]any)["amount"])
			inv, _ := r["inventory"].(map[string]any)
			count, _ := number(inv["inventory_count"])
			return map[string]any{"ProductName": r["name"], "Sku": r["sku"], "ShortDescription": r["short_description"],
				"ProductPrice": price / 100, "Status": map[bool]int64{true: 1}[r["active"] == true], "Inventory": int64(count)}
		},
		func(data map[string]any) (map[string]any, error) {
			body := map[string]any{}
			for k, v := range data {
				switch k {
				case "ProductName":
					body["name"] = legacyString(v)
				case "Sku":
					body["sku"] = legacyString(v)
				case "ShortDescription":
					body["short_description"] = legacyString(v)
				case "ProductPrice":
					f, _ := number(v)
					body["price"] = json.Number(strconv.FormatInt(int64(math.Round(f*100)), 10))
				default:
					return nil, fault("NoFieldFound", "No field found: Product.%s", k)
				}
			}
			if body["short_description"] == nil {
				body["short_description"] = body["name"]
			}
			return body, nil
		}),
	"Lead": v2Table("opportunities", []string{"Id", "OpportunityTitle", "ContactID", "StageID", "DateCreated"},
		func(r map[string]any) map[string]any {
			return map[string]any{"OpportunityTitle": r["opportunity_title"], "ContactID": nested(r, "contact"), "StageID": nested(r, "stage"), "DateCreated": r["created_time"]}
		},
		func(data map[string]any) (map[string]any, error) {
			body := map[string]any{}
			for k, v := range data {
				switch k {
				case "OpportunityTitle":
					body["opportunity_title"] = legacyString(v)
				case "ContactID":
					body["contact_id"] = legacyString(v)
				case "StageID":
					body["stage_id"] = legacyString(v)
				default:
					return nil, fault("NoFieldFound", "No field found: Lead.%s", k)
				}
			}
			return body, nil
		}),
	"Invoice": v2Table("orders", []string{"Id", "JobId", "ContactId", "Description", "InvoiceTotal", "TotalPaid", "TotalDue", "PayStatus", "DateCreated"},
		func(r map[string]any) map[string]any {
			cents := func(k string) float64 { n, _ := number(r[k].(map[string]any)["amount"]); return n / 100 }
			return map[string]any{"JobId": r["id"], "ContactId": nested(r, "contact"), "Description": r["title"], "InvoiceTotal": cents("total"),
				"TotalPaid": cents("total_paid"), "TotalDue": cents("total_due"), "PayStatus": map[bool]int64{true: 1}[r["status"] == "PAID"], "DateCreated": r["order_time"]}
		}, nil),
	"Job": v2Table("orders", []string{"Id", "ContactId", "JobTitle", "OrderType", "DateCreated"},
		func(r map[string]any) map[string]any {
			return map[string]any{"ContactId": nested(r, "contact"), "JobTitle": r["title"], "OrderType": r["order_type"], "DateCreated": r["creation_time"]}
		}, nil),
	"ContactAction": v2Table("notes", []string{"Id", "ContactId", "ObjectType", "ActionDescription", "CreationNotes", "CreationDate"},
		func(r map[string]any) map[string]any {
			return map[string]any{"ContactId": r["contact_id"], "ObjectType": "Note", "ActionDescription": r["title"], "CreationNotes": r["text"], "CreationDate": r["create_time"]}
		},
		func(data map[string]any) (map[string]any, error) {
			body := map[string]any{"user_id": "1"}
			for k, v := range data {
				switch k {
				case "ContactId":
					body["contact_id"] = legacyString(v)
				case "ObjectType":
					if legacyString(v) != "Note" {
						return nil, fault("InvalidParameter", "the fake's ContactAction takes notes only")
					}
				case "ActionDescription":
					body["title"] = legacyString(v)
				case "CreationNotes":
					body["text"] = legacyString(v)
				default:
					return nil, fault("NoFieldFound", "No field found: ContactAction.%s", k)
				}
			}
			return body, nil
		}),
}

func nested(r map[string]any, key string) any {
	m, _ := r[key].(map[string]any)
	return m["id"]
}

// v2Table is an XML-RPC table over a REST v2 kind: row maps a record's
// members to XML-RPC fields, body maps XML-RPC fields to a create body (nil:
// the table is read-only here).
func v2Table(kind string, fields []string, row func(map[string]any) map[string]any, body func(map[string]any) (map[string]any, error)) xmlTable {
	t := xmlTable{fields: fields}
	t.rows = func(s *Server) []map[string]any {
		recs := s.v2records[kind]
		ids := make([]int64, 0, len(recs))
		for id := range recs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var out []map[string]any
		for _, id := range ids {
			rec := jsonCopy(recs[id])
			r := row(rec)
			r["Id"] = id
			for k, v := range r {
				r[k] = legacyValue(k, v)
			}
			out = append(out, compactRow(r))
		}
		return out
	}
	if body != nil {
		t.add = func(s *Server, data map[string]any) (int64, error) {
			b, err := body(data)
			if err != nil {
				return 0, err
			}
			return s.createV2Locked(kind, b)
		}
	}
	return t
}

// legacyValue is how XML-RPC shows a REST v2 member: ids and counts as
// integers, times as dateTime.
func legacyValue(name string, v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case string:
		if strings.HasSuffix(name, "Id") || strings.HasSuffix(name, "ID") {
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return n
			}
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil && strings.Contains(name, "Date") {
			return t.UTC()
		}
	}
	return v
}

// createV2Locked makes a record of a REST v2 kind as a create through REST v2 does.
func (s *Server) createV2Locked(kind string, body map[string]any) (int64, error) {
	i := slices.IndexFunc(v2Kinds, func(k v2Kind) bool { return k.name == kind })
	k := v2Kinds[i]
	for _, name := range k.required {
		if v, ok := body[name]; !ok || v == nil || v == "" {
			return 0, fault("InvalidParameter", "%s is required", name)
		}
	}
	body = jsonCopy(body)
	id := s.nextIDLocked("v2:" + k.name)
	now := formatTime(s.stamp())
	rec := map[string]any{"id": idString(id)}
	if k.parent != "" {
		rec[k.parent] = body[k.parent]
	}
	if k.stamps[0] != "" {
		rec[k.stamps[0]] = now
	}
	if msg := k.shape(s, rec, body); msg != "" {
		s.lastID["v2:"+k.name]--
		return 0, fault("InvalidParameter", "%s", msg)
	}
	if k.stamps[1] != "" {
		rec[k.stamps[1]] = now
	}
	s.v2records[k.name][id] = rec
	return id, nil
}

func setTagFields(t *tag, data map[string]any) error {
	for k, v := range data {
		switch k {
		case "GroupName":
			t.name = legacyString(v)
		case "GroupDescription":
			t.description = legacyString(v)
		case "GroupCategoryId":
			n, _ := v.(int64)
			t.categoryID = n
		case "Id":
			return fault("InvalidParameter", "Field ContactGroup.Id is read-only")
		default:
			return fault("NoFieldFound", "No field found: ContactGroup.%s", k)
		}
	}
	return nil
}

func compactRow(m map[string]any) map[string]any {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case string:
			if x == "" {
				delete(m, k)
			}
		case int64:
			if x == 0 && k != "Status" && k != "PayStatus" && k != "Inventory" {
				delete(m, k)
			}
		case time.Time:
			if x.IsZero() {
				delete(m, k)
			}
		}
	}
	return m
}

func sortedByID[T any](m map[int64]T) []T {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]T, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out
}

func (s *Server) xmlTableLocked(name string) (xmlTable, error) {
	t, ok := xmlTables[name]
	if !ok {
		return t, fault("InvalidParameter", "Invalid table name: %s", name)
	}
	return t, nil
}

func pickRow(table string, t xmlTable, row map[string]any, fields []any) (map[string]any, error) {
	out := map[string]any{}
	for _, n := range fields {
		name, _ := n.(string)
		if !slices.Contains(t.fields, name) {
			return nil, fault("NoFieldFound", "No field found: %s.%v", table, n)
		}
		if v, ok := row[name]; ok {
			out[name] = v
		}
	}
	return out, nil
}

// rpcTableQuery is DataService.query on any table: case-insensitive exact
// matches, % wildcards, ~null~, ordered by Id unless told.
func (s *Server) rpcTableQuery(args []any) (any, error) {
	table, limit, page := args[1].(string), int(args[2].(int64)), int(args[3].(int64))
	query, fields := args[4].(map[string]any), args[5].([]any)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.xmlTableLocked(table)
	if err != nil {
		return nil, err
	}
	orderBy, ascending := "", true // rows come ordered by Id, or as a join table lists them
	if len(args) == 8 {
		orderBy, ascending = args[6].(string), args[7].(bool)
	}
	if limit <= 0 || limit > 1000 || page < 0 {
		return nil, fault("InvalidParameter", "limit must be between 1 and 1000 and page not negative")
	}
	for name := range query {
		if !slices.Contains(t.fields, name) {
			return nil, fault("NoFieldFound", "No field found: %s.%s", table, name)
		}
	}
	if orderBy != "" && !slices.Contains(t.fields, orderBy) {
		return nil, fault("NoFieldFound", "No field found: %s.%s", table, orderBy)
	}
	var matches []map[string]any
	for _, row := range t.rows(s) {
		if !slices.ContainsFunc(mapKeys(query), func(name string) bool { return !queryMatch(row[name], query[name]) }) {
			matches = append(matches, row)
		}
	}
	slices.SortStableFunc(matches, func(a, b map[string]any) int {
		if orderBy == "" {
			return 0
		}
		c := compareValues(a[orderBy], b[orderBy])
		if !ascending {
			c = -c
		}
		return c
	})
	out := []any{}
	for _, row := range matches[min(page*limit, len(matches)):min((page+1)*limit, len(matches))] {
		r, err := pickRow(table, t, row, fields)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Server) rpcTableCount(args []any) (any, error) {
	rows, err := s.rpcTableQuery([]any{args[0], args[1], int64(1000), int64(0), args[2], []any{}})
	if err != nil {
		return nil, err
	}
	return int64(len(rows.([]any))), nil
}

func (s *Server) rpcTableFindByField(args []any) (any, error) {
	name, _ := args[4].(string)
	return s.rpcTableQuery([]any{args[0], args[1], args[2], args[3], map[string]any{name: args[5]}, args[6]})
}

func (s *Server) rpcTableLoad(args []any) (any, error) {
	table, id, fields := args[1].(string), args[2].(int64), args[3].([]any)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.xmlTableLocked(table)
	if err != nil {
		return nil, err
	}
	for _, row := range t.rows(s) {
		if row["Id"] == id {
			return pickRow(table, t, row, fields)
		}
	}
	if _, err := pickRow(table, t, nil, fields); err != nil {
		return nil, err
	}
	return nil, fault("RecordNotFound", "Record was not found: %s %d", table, id)
}

func (s *Server) rpcTableAdd(args []any) (any, error) {
	table, data := args[1].(string), args[2].(map[string]any)
	s.mu.Lock()
	t, err := s.xmlTableLocked(table)
	if err == nil && t.add == nil {
		err = fault("InvalidParameter", "the fake does not add to %s", table)
	}
	var id int64
	if err == nil {
		id, err = t.add(s, data)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if table == "Contact" {
		s.notify("contact.add", id)
	}
	return id, nil
}

func (s *Server) rpcTableUpdate(args []any) (any, error) {
	table, id, data := args[1].(string), args[2].(int64), args[3].(map[string]any)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.xmlTableLocked(table)
	if err == nil && t.update == nil {
		err = fault("InvalidParameter", "the fake does not update %s", table)
	}
	if err == nil {
		err = t.update(s, id, data)
	}
	if err != nil {
		return nil, err
	}
	return id, nil
}

func (s *Server) rpcTableDelete(args []any) (any, error) {
	table, id := args[1].(string), args[2].(int64)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.xmlTableLocked(table)
	if err == nil && t.delete == nil {
		err = fault("InvalidParameter", "the fake does not delete from %s", table)
	}
	if err != nil {
		return nil, err
	}
	if !t.delete(s, id) {
		return nil, fault("RecordNotFound", "Record was not found: %s %d", table, id)
	}
	return true, nil
}

func (s *Server) rpcFindByEmail(args []any) (any, error) {
	return s.rpcTableQuery([]any{args[0], "Contact", int64(1000), int64(0), map[string]any{"Email": args[1]}, args[2]})
}

func (s *Server) rpcMerge(args []any) (any, error) {
	keepID, dupID := args[1].(int64), args[2].(int64)
	s.mu.Lock()
	defer s.mu.Unlock()
	keep, dup := s.contacts[keepID], s.contacts[dupID]
	if keep == nil || dup == nil || keepID == dupID {
		return nil, fault("RecordNotFound", "Record was not found: Contact %d", cmp.Or(map[bool]int64{true: keepID}[keep == nil], dupID))
	}
	// Keap keeps the first contact's values, filling its blanks from the duplicate.
	for _, f := range legacyContactFields {
		if f.set != nil && f.get(keep) == nil {
			if v := f.get(dup); v != nil {
				f.set(keep, legacyString(v))
			}
		}
	}
	for tid, at := range dup.tags {
		if _, ok := keep.tags[tid]; !ok {
			keep.tags[tid] = at
		}
	}
	keep.optedIn = keep.optedIn || dup.optedIn
	keep.updated = s.stamp()
	s.moveContactRecordsLocked(dupID, keepID)
	delete(s.contacts, dupID)
	return true, nil
}

func (s *Server) rpcOpt(args []any, in bool) (any, error) {
	email, reason := args[1].(string), args[2].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.TrimSpace(reason) == "" {
		return nil, fault("InvalidParameter", "a reason is required")
	}
	if !s.knownEmailLocked(email) {
		return nil, fault("RecordNotFound", "Record was not found: email address %s", email)
	}
	s.setEmailOptLocked(email, in)
	_, optedIn := s.emailStatusLocked(email)
	return optedIn == in, nil
}

// rpcOptStatus answers 0 (not marketable), 1 (marketable) or 2 (confirmed).
func (s *Server) rpcOptStatus(args []any) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch status, _ := s.emailStatusLocked(args[1].(string)); status {
	case "DOUBLE_OPT_IN", "CONFIRMED":
		return int64(2), nil
	case "SINGLE_OPT_IN", "UNENGAGED_MARKETABLE":
		return int64(1), nil
	}
	return int64(0), nil
}

func (s *Server) rpcAchieveGoal(args []any) (any, error) {
	integration, call, contactID := args[1].(string), args[2].(string), args[3].(int64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.contacts[contactID] == nil {
		return nil, fault("RecordNotFound", "Record was not found: Contact %d", contactID)
	}
	out := []any{}
	for _, r := range s.achieveGoalLocked(contactID, integration, call) {
		m := r.(map[string]any)
		out = append(out, map[string]any{"success": m["success"], "msg": m["message"], "goalId": m["goal_id"], "funnelId": m["automation_id"]})
	}
	return out, nil
}

func (s *Server) rpcInventory(args []any, delta int64) (any, error) {
	id := args[1].(int64)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.v2records["products"][id]
	if p == nil {
		return nil, fault("RecordNotFound", "Record was not found: Product %d", id)
	}
	inv := p["inventory"].(map[string]any)
	count, _ := number(inv["inventory_count"])
	inv["inventory_count"] = int64(count) + delta
	return true, nil
}

func (s *Server) rpcCreateBlankOrder(args []any) (any, error) {
	contactID, desc, date := args[1].(int64), args[2].(string), args[3].(time.Time)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.contacts[contactID] == nil {
		return nil, fault("RecordNotFound", "Record was not found: Contact %d", contactID)
	}
	return s.createV2Locked("orders", map[string]any{"contact_id": idString(contactID), "order_title": desc,
		"order_time": formatTime(date), "order_type": "OFFLINE"})
}

// xmlItemTypes are XML-RPC's order item types the fake knows.
var xmlItemTypes = map[int64]string{1: "SHIPPING", 2: "TAX", 4: "PRODUCT", 6: "FINANCE_CHARGE", 9: "SUBSCRIPTION"}

func (s *Server) rpcAddOrderItem(args []any) (any, error) {
	orderID, productID, typ := args[1].(int64), args[2].(int64), args[3].(int64)
	price, _ := number(args[4])
	qty, desc, notes := args[5].(int64), args[6].(string), args[7].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	order := s.v2records["orders"][orderID]
	if order == nil {
		return nil, fault("RecordNotFound", "Record was not found: Invoice %d", orderID)
	}
	body := map[string]any{"item_type": xmlItemTypes[typ], "quantity": json.Number(strconv.FormatInt(qty, 10)),
		"price_per_unit": json.Number(strconv.FormatFloat(price, 'f', -1, 64)), "description": desc, "notes": notes}
	if productID > 0 {
		body["product_id"] = idString(productID)
	}
	item, msg := s.orderItemLocked(body)
	if msg != "" {
		return nil, fault("InvalidParameter", "%s", msg)
	}
	order["order_items"] = append(order["order_items"].([]any), item)
	s.totalOrderLocked(order)
	return true, nil
}

func (s *Server) rpcAddManualPayment(args []any) (any, error) {
	orderID := args[1].(int64)
	amount, _ := number(args[2])
	date, typ, desc, bypass := args[3].(time.Time), args[4].(string), args[5].(string), args[6].(bool)
	s.mu.Lock()
	defer s.mu.Unlock()
	order := s.v2records["orders"][orderID]
	if order == nil {
		return nil, fault("RecordNotFound", "Record was not found: Invoice %d", orderID)
	}
	id := s.nextIDLocked("v2:order_payments")
	s.v2records["order_payments"][id] = compact(map[string]any{"id": idString(id), "_order_id": order["id"], "amount": amount, "note": desc,
		"invoice_id": order["invoice_id"], "payment_id": idString(id), "pay_time": formatTime(date), "pay_status": "MANUAL_PAID",
		"last_updated_time": formatTime(s.stamp()), "skip_commission": bypass, "_type": typ})
	s.totalOrderLocked(order)
	return true, nil
}
