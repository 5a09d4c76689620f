package xmlrpcbridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/connectord/connectord/internal/keap"
)

// method is one XML-RPC method the bridge serves.
type method struct {
	keyed bool       // the first parameter is the key
	sigs  [][]string // accepted kinds of the parameters after the key
	rest  string     // the REST v2 calls it makes, for system.listMethods' readers and the README
	fn    func(c *rcall, args []any) (any, error)
}

// Method describes one served method: its name and the REST v2 calls it makes.
type Method struct {
	Name string
	REST string
}

// Methods lists what the bridge serves, sorted by name.
func (b *Bridge) Methods() []Method {
	var out []Method
	for _, name := range slices.Sorted(maps.Keys(b.methods)) {
		out = append(out, Method{Name: name, REST: b.methods[name].rest})
	}
	return out
}

// kind names an argument's XML-RPC type; ints may come as text, as PHP
// clients send them.
func kind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "int"
	case bool:
		return "boolean"
	case float64:
		return "double"
	case map[string]any:
		return "struct"
	case []any:
		return "array"
	}
	return "nil"
}

func fits(want string, v any) bool {
	k := kind(v)
	switch want {
	case "any":
		return true
	case "int":
		if s, ok := v.(string); ok {
			_, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			return err == nil
		}
	case "double":
		return k == "double" || k == "int"
	case "date":
		return k == "string"
	case "boolean":
		return k == "boolean" || k == "int"
	}
	return k == want
}

// javaTypes are the names Keap's XML-RPC server gave the types of XML-RPC values.
var javaTypes = map[string]string{"string": "java.lang.String", "int": "java.lang.Integer", "boolean": "java.lang.Boolean",
	"double": "java.lang.Double", "struct": "java.util.HashMap", "array": "[Ljava.lang.Object;", "nil": "null"}

func (m *method) check(name string, all, args []any) error {
	for _, sig := range m.sigs {
		ok := len(sig) == len(args)
		for i := 0; ok && i < len(args); i++ {
			ok = fits(sig[i], args[i])
		}
		if ok {
			return nil
		}
	}
	// Keap's XML-RPC server (Apache XML-RPC) named the Java types it got,
	// the key's included; the bridge adds what the method takes.
	java := make([]string, 0, len(all))
	for _, a := range all {
		java = append(java, javaTypes[kind(a)])
	}
	want := make([]string, len(m.sigs))
	for i, s := range m.sigs {
		want[i] = "(" + strings.Join(s, ", ") + ")"
	}
	after := ""
	if m.keyed {
		after = " after the key"
	}
	return &keap.Fault{Code: 0, String: fmt.Sprintf("No method matching arguments: %s; %s takes%s %s", strings.Join(java, ", "), name, after, strings.Join(want, " or "))}
}

func sig(list ...string) [][]string {
	out := make([][]string, len(list))
	for i, l := range list {
		out[i] = strings.Fields(l)
	}
	return out
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case string:
		n, _ := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n
	}
	return 0
}

func asBool(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case int64:
		return x != 0
	}
	return false
}

func methodTable() map[string]*method {
	m := map[string]*method{
		"system.listMethods": {sigs: sig(""), rest: "none", fn: nil},

		"DataService.query": {keyed: true, sigs: sig("string int int struct array", "string int int struct array string boolean"),
			rest: "GET {table path}?filter=…&order_by=…&page_size=limit, following page_token page times",
			fn: func(c *rcall, a []any) (any, error) {
				q := queryArgs{table: a[0].(string), limit: asInt(a[1]), page: asInt(a[2]), query: a[3].(map[string]any), fields: a[4].([]any)}
				if len(a) == 7 {
					q.orderBy, q.ascending = a[5].(string), asBool(a[6])
				}
				return c.query(q)
			}},
		"DataService.queryWithOrderBy": {keyed: true, sigs: sig("string int int struct array string boolean"),
			rest: "as DataService.query, with order_by",
			fn: func(c *rcall, a []any) (any, error) {
				return c.query(queryArgs{table: a[0].(string), limit: asInt(a[1]), page: asInt(a[2]), query: a[3].(map[string]any), fields: a[4].([]any), orderBy: a[5].(string), ascending: asBool(a[6])})
			}},
		"DataService.findByField": {keyed: true, sigs: sig("string int int string any array"),
			rest: "as DataService.query on one field",
			fn: func(c *rcall, a []any) (any, error) {
				return c.query(queryArgs{table: a[0].(string), limit: asInt(a[1]), page: asInt(a[2]), query: map[string]any{a[3].(string): a[4]}, fields: a[5].([]any)})
			}},
		"DataService.count": {keyed: true, sigs: sig("string struct"),
			rest: "GET {table path}?filter=…&page_size=1000, every page (v2 answers no total)",
			fn:   func(c *rcall, a []any) (any, error) { return c.count(a[0].(string), a[1].(map[string]any)) }},
		"DataService.load": {keyed: true, sigs: sig("string int array"),
			rest: "GET {table path}/{id}",
			fn:   func(c *rcall, a []any) (any, error) { return c.load(a[0].(string), asInt(a[1]), a[2].([]any)) }},
		"DataService.add": {keyed: true, sigs: sig("string struct"),
			rest: "POST {table path}",
			fn:   func(c *rcall, a []any) (any, error) { return c.add(a[0].(string), a[1].(map[string]any), "") }},
		"DataService.update": {keyed: true, sigs: sig("string int struct"),
			rest: "PATCH {table path}/{id}?update_mask=… (after a GET when an email, phone or address changes)",
			fn: func(c *rcall, a []any) (any, error) {
				return c.update(a[0].(string), asInt(a[1]), a[2].(map[string]any))
			}},
		"DataService.delete": {keyed: true, sigs: sig("string int"),
			rest: "DELETE {table path}/{id}",
			fn:   func(c *rcall, a []any) (any, error) { return c.delete(a[0].(string), asInt(a[1])) }},
		"DataService.getAppSetting": {keyed: true, sigs: sig("string string"),
			rest: "GET /settings/contactOptionTypes or /settings/applications:getConfiguration",
			fn:   func(c *rcall, a []any) (any, error) { return c.appSetting(a[0].(string), a[1].(string)) }},

		"ContactService.add": {keyed: true, sigs: sig("struct"), rest: "POST /contacts",
			fn: func(c *rcall, a []any) (any, error) { return c.add("Contact", a[0].(map[string]any), "") }},
		"ContactService.addWithDupCheck": {keyed: true, sigs: sig("struct string"), rest: "POST /contacts?duplicate_option=…",
			fn: func(c *rcall, a []any) (any, error) {
				check := a[1].(string)
				if !slices.Contains([]string{"Email", "EmailAndName", "EmailAndNameAndCompany"}, check) {
					return nil, fault("InvalidParameter", "Invalid duplicate check type %q: use Email, EmailAndName or EmailAndNameAndCompany", check)
				}
				return c.add("Contact", a[0].(map[string]any), check)
			}},
		"ContactService.update": {keyed: true, sigs: sig("int struct"), rest: "PATCH /contacts/{id}?update_mask=… (after a GET when an email, phone or address changes)",
			fn: func(c *rcall, a []any) (any, error) { return c.update("Contact", asInt(a[0]), a[1].(map[string]any)) }},
		"ContactService.load": {keyed: true, sigs: sig("int array"), rest: "GET /contacts/{id}?fields=…",
			fn: func(c *rcall, a []any) (any, error) { return c.load("Contact", asInt(a[0]), a[1].([]any)) }},
		"ContactService.findByEmail": {keyed: true, sigs: sig("string array"), rest: "GET /contacts?filter=email==…",
			fn: func(c *rcall, a []any) (any, error) {
				return c.query(queryArgs{table: "Contact", limit: maxLimit, query: map[string]any{"Email": a[0]}, fields: a[1].([]any)})
			}},
		"ContactService.addToGroup": {keyed: true, sigs: sig("int int"), rest: "POST /tags/{tag}/contacts:applyTags",
			fn: func(c *rcall, a []any) (any, error) { return c.tag(asInt(a[0]), asInt(a[1]), "applyTags") }},
		"ContactService.removeFromGroup": {keyed: true, sigs: sig("int int"), rest: "POST /tags/{tag}/contacts:removeTags",
			fn: func(c *rcall, a []any) (any, error) { return c.tag(asInt(a[0]), asInt(a[1]), "removeTags") }},
		"ContactService.merge": {keyed: true, sigs: sig("int int"), rest: "POST /contacts:merge",
			fn: func(c *rcall, a []any) (any, error) { return c.merge(asInt(a[0]), asInt(a[1])) }},
		"ContactService.addToCampaign": {keyed: true, sigs: sig("int int"), rest: "none: legacy follow-up sequences are not in REST",
			fn: func(c *rcall, a []any) (any, error) { return nil, noLegacyCampaigns("addToCampaign", "addContacts") }},
		"ContactService.removeFromCampaign": {keyed: true, sigs: sig("int int"), rest: "none: legacy follow-up sequences are not in REST",
			fn: func(c *rcall, a []any) (any, error) {
				return nil, noLegacyCampaigns("removeFromCampaign", "removeContacts")
			}},

		"APIEmailService.optIn": {keyed: true, sigs: sig("string string"), rest: "PATCH /emailAddresses/{email}/status",
			fn: func(c *rcall, a []any) (any, error) { return c.opt(a[0].(string), a[1].(string), true) }},
		"APIEmailService.optOut": {keyed: true, sigs: sig("string string"), rest: "PATCH /emailAddresses/{email}/status",
			fn: func(c *rcall, a []any) (any, error) { return c.opt(a[0].(string), a[1].(string), false) }},
		"APIEmailService.getOptStatus": {keyed: true, sigs: sig("string"), rest: "GET /emailAddresses/{email}/status",
			fn: func(c *rcall, a []any) (any, error) { return c.optStatus(a[0].(string)) }},

		"FunnelService.achieveGoal": {keyed: true, sigs: sig("string string int"), rest: "POST /automations/goals/achieve",
			fn: func(c *rcall, a []any) (any, error) { return c.achieveGoal(a[0].(string), a[1].(string), asInt(a[2])) }},

		"ProductService.incrementInventory": {keyed: true, sigs: sig("int"), rest: "POST /products/{id}:adjustInventory (INCREASE 1)",
			fn: func(c *rcall, a []any) (any, error) { return c.inventory(asInt(a[0]), "INCREASE") }},
		"ProductService.decrementInventory": {keyed: true, sigs: sig("int"), rest: "POST /products/{id}:adjustInventory (DECREASE 1)",
			fn: func(c *rcall, a []any) (any, error) { return c.inventory(asInt(a[0]), "DECREASE") }},

		"InvoiceService.createBlankOrder": {keyed: true, sigs: sig("int string date int int"), rest: "POST /orders",
			fn: func(c *rcall, a []any) (any, error) {
				return c.blankOrder(asInt(a[0]), a[1].(string), a[2].(string), asInt(a[3]), asInt(a[4]))
			}},
		"InvoiceService.addOrderItem": {keyed: true, sigs: sig("int int int double int string string"), rest: "POST /orders/{id}/items",
			fn: func(c *rcall, a []any) (any, error) {
				return c.orderItem(asInt(a[0]), asInt(a[1]), asInt(a[2]), asFloat(a[3]), asInt(a[4]), a[5].(string), a[6].(string))
			}},
		"InvoiceService.addManualPayment": {keyed: true, sigs: sig("int double date string string boolean"), rest: "POST /orders/{id}/payments",
			fn: func(c *rcall, a []any) (any, error) {
				return c.payment(asInt(a[0]), asFloat(a[1]), a[2].(string), a[3].(string), a[4].(string), asBool(a[5]))
			}},
	}
	m["system.listMethods"].fn = func(*rcall, []any) (any, error) {
		names := make([]any, 0, len(m))
		for _, name := range slices.Sorted(maps.Keys(m)) {
			names = append(names, name)
		}
		return names, nil
	}
	return m
}

func asFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	}
	return 0
}

func noLegacyCampaigns(name, action string) error {
	return fault("InvalidParameter", "ContactService.%s: Keap's legacy follow-up sequences have no REST equivalent, so the bridge cannot translate it; "+
		"use FunnelService.achieveGoal to start a campaign, or POST /proxy/crm/rest/v2/campaigns/{campaign_id}/sequences/{sequence_id}:%s", name, action)
}

// tag applies or removes one tag (action applyTags or removeTags).
func (c *rcall) tag(contactID, tagID int64, action string) (any, error) {
	p := "/tags/" + strconv.FormatInt(tagID, 10) + "/contacts:" + action
	resp, err := c.rest(http.MethodPost, p, nil, map[string]any{"contact_ids": []string{strconv.FormatInt(contactID, 10)}})
	if err != nil {
		return nil, translate(err, recordNotFound("ContactGroup", tagID))
	}
	// applyTags answers, per contact, what became of it.
	if results, ok := resp["results"].(map[string]any); ok {
		if r, ok := results[strconv.FormatInt(contactID, 10)].(string); ok && !strings.EqualFold(r, "SUCCESS") {
			if strings.Contains(strings.ToUpper(r), "NOT_FOUND") || strings.Contains(strings.ToUpper(r), "NOT FOUND") {
				return nil, recordNotFound("Contact", contactID)
			}
			return nil, fault("InvalidParameter", "Keap could not tag contact %d: %s", contactID, r)
		}
	}
	return true, nil
}

func (c *rcall) merge(id, duplicate int64) (any, error) {
	_, err := c.rest(http.MethodPost, "/contacts:merge", nil, map[string]any{
		"contact_id": strconv.FormatInt(id, 10), "duplicate_contact_id": strconv.FormatInt(duplicate, 10)})
	if err != nil {
		return nil, translate(err, nil)
	}
	return true, nil
}

func (c *rcall) opt(email, reason string, in bool) (any, error) {
	if strings.TrimSpace(email) == "" {
		return nil, fault("InvalidParameter", "an email address is required")
	}
	if strings.TrimSpace(reason) == "" {
		return nil, fault("InvalidParameter", "a reason is required: Keap records why an address was opted in or out")
	}
	resp, err := c.rest(http.MethodPatch, "/emailAddresses/"+escapeSegment(email)+"/status", nil, map[string]any{"opted_in": in, "reason": reason})
	if err != nil {
		return nil, translate(err, fault("RecordNotFound", "Record was not found: email address %s", email))
	}
	// Keap answers whether the address ended up as asked: an address that
	// unsubscribed or bounced is not opted in again.
	return resp["opted_in"] == in, nil
}

// optStatus is Keap's XML-RPC answer: 0 not marketable, 1 marketable
// (single opt-in or unengaged), 2 confirmed (double opt-in).
func (c *rcall) optStatus(email string) (any, error) {
	resp, err := c.rest(http.MethodGet, "/emailAddresses/"+escapeSegment(email)+"/status", nil, nil)
	var re *restError
	if errors.As(err, &re) && re.status == http.StatusNotFound {
		return int64(0), nil // Keap's XML-RPC: an address it does not know is not marketable
	}
	if err != nil {
		return nil, translate(err, nil)
	}
	switch s, _ := resp["status"].(string); s {
	case "SINGLE_OPT_IN", "UNENGAGED_MARKETABLE":
		return int64(1), nil
	case "DOUBLE_OPT_IN", "CONFIRMED":
		return int64(2), nil
	}
	return int64(0), nil
}

func (c *rcall) achieveGoal(integration, callName string, contactID int64) (any, error) {
	resp, err := c.rest(http.MethodPost, "/automations/goals/achieve", nil, map[string]any{
		"integration": integration, "call_name": callName, "contact_id": contactID})
	if err != nil {
		return nil, translate(err, recordNotFound("Contact", contactID))
	}
	out := []any{}
	results, _ := resp["results"].([]any)
	for _, r := range results {
		m, _ := r.(map[string]any)
		row := map[string]any{"success": m["success"] == true}
		if s, ok := m["message"].(string); ok {
			row["msg"] = s
		}
		if n, ok := m["goal_id"].(float64); ok {
			row["goalId"] = int64(n)
		}
		if n, ok := m["automation_id"].(float64); ok {
			row["funnelId"] = int64(n)
		}
		out = append(out, row)
	}
	return out, nil
}

func (c *rcall) inventory(productID int64, direction string) (any, error) {
	_, err := c.rest(http.MethodPost, "/products/"+strconv.FormatInt(productID, 10)+":adjustInventory", nil,
		map[string]any{"type": direction, "quantity": 1})
	if err != nil {
		return nil, translate(err, recordNotFound("Product", productID))
	}
	return true, nil
}

func (c *rcall) blankOrder(contactID int64, description, date string, leadAffiliate, saleAffiliate int64) (any, error) {
	t, err := parseDate(date)
	if err != nil {
		return nil, fault("InvalidParameter", "orderDate is not a date: %s", date)
	}
	order := map[string]any{"contact_id": strconv.FormatInt(contactID, 10), "order_title": description,
		"order_time": t.Format(v2Time), "order_type": "OFFLINE"}
	if leadAffiliate > 0 {
		order["lead_affiliate_id"] = strconv.FormatInt(leadAffiliate, 10)
	}
	if saleAffiliate > 0 {
		order["sales_affiliate_id"] = strconv.FormatInt(saleAffiliate, 10)
	}
	resp, err := c.rest(http.MethodPost, "/orders", nil, order)
	if err != nil {
		return nil, translate(err, recordNotFound("Contact", contactID))
	}
	id, ok := toXML(&field{Type: "id"}, resp["id"])
	if !ok {
		return nil, fault("UnexpectedError", "Keap's answer to the new order has no id")
	}
	return id, nil
}

// itemTypes are Keap's XML-RPC order item types that REST v2 has.
var itemTypes = map[int64]string{1: "SHIPPING", 2: "TAX", 4: "PRODUCT", 6: "FINANCE_CHARGE", 9: "SUBSCRIPTION"}

func (c *rcall) orderItem(orderID, productID, itemType int64, price float64, quantity int64, description, notes string) (any, error) {
	typ, ok := itemTypes[itemType]
	if !ok {
		return nil, fault("InvalidParameter", "order item type %d has no REST v2 equivalent; the bridge takes 1 (shipping), 2 (tax), 4 (product), 6 (finance charge) or 9 (subscription)", itemType)
	}
	if quantity < 1 {
		return nil, fault("InvalidParameter", "quantity must be 1 or more")
	}
	item := map[string]any{"item_type": typ, "quantity": quantity, "price_per_unit": price, "description": description, "notes": notes}
	if productID > 0 {
		item["product_id"] = strconv.FormatInt(productID, 10)
	}
	if _, err := c.rest(http.MethodPost, "/orders/"+strconv.FormatInt(orderID, 10)+"/items", nil, item); err != nil {
		return nil, translate(err, recordNotFound("Invoice", orderID))
	}
	return true, nil
}

func (c *rcall) payment(orderID int64, amount float64, date, paymentType, description string, bypassCommissions bool) (any, error) {
	t, err := parseDate(date)
	if err != nil {
		return nil, fault("InvalidParameter", "paymentDate is not a date: %s", date)
	}
	pay := map[string]any{"payment_amount": amount, "payment_time": t.Format(v2Time), "payment_method_type": paymentType,
		"notes": description, "apply_to_commissions": !bypassCommissions}
	if _, err := c.rest(http.MethodPost, "/orders/"+strconv.FormatInt(orderID, 10)+"/payments", nil, pay); err != nil {
		return nil, translate(err, recordNotFound("Invoice", orderID))
	}
	return true, nil
}

// setting is where one of getAppSetting's settings is read.
type setting struct {
	Path   string `json:"path"`
	Member string `json:"member"`
}

func loadSettings(fsys fs.FS) (map[string]setting, error) {
	data, err := fs.ReadFile(fsys, "settings.json")
	if err != nil {
		return nil, err
	}
	var f struct {
		About    string             `json:"about"`
		Settings map[string]setting `json:"settings"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("xmlrpcbridge: settings.json: %w", err)
	}
	return f.Settings, nil
}

func (c *rcall) appSetting(module, name string) (any, error) {
	s, ok := c.b.settings[module+"."+name]
	if !ok {
		return nil, fault("InvalidParameter", "the bridge does not know the setting %s.%s; it reads %s", module, name,
			strings.Join(slices.Sorted(maps.Keys(c.b.settings)), ", "))
	}
	p, q, _ := strings.Cut(s.Path, "?")
	params, _ := url.ParseQuery(q)
	resp, err := c.rest(http.MethodGet, p, params, nil)
	if err != nil {
		return nil, translate(err, nil)
	}
	switch v := get(resp, s.Member).(type) {
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = text(x)
		}
		return strings.Join(parts, ","), nil
	case nil:
		return "", nil
	default:
		return text(v), nil
	}
}
