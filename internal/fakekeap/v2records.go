package fakekeap

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"
)

// The REST v2 resources beyond contacts, tags and companies: each is a
// v2Kind, stored as the JSON Keap answers with (ids as strings), with its
// documented body members, filters and orders as data and a small shape
// function for the members Keap derives (an opportunity's contact and
// stage, an order's totals, a product's price). Members whose names start
// with "_" are the fake's own bookkeeping and never leave it.

// v2Kind is one generic REST v2 resource.
type v2Kind struct {
	name     string // the list key and the store's key, e.g. "opportunities"
	path     string // under /crm/rest/v2
	idParam  string // the path parameter of one record
	singular string
	parent   string   // a parent path parameter (contact_id for notes), or ""
	create   []string // CreateXRequest members
	required []string
	update   []string // UpdateXRequest members; nil: as create
	list     v2Params
	optional []string // properties only answered when fields names them
	// shape merges a create or update body into rec (the stored answer)
	// and derives what Keap computes; it returns a 400 message or "".
	shape  func(s *Server, rec, body map[string]any) string
	stamps [2]string // members set on create and on every change
}

var opportunityFields = []string{"custom_fields", "created_by", "last_updated_by", "status_id", "monthly_revenue", "order_revenue", "objection", "status", "stage_entrance_time"}

var v2Kinds = []v2Kind{
	{name: "opportunities", path: "/opportunities", idParam: "opportunity_id", singular: "Opportunity",
		create: []string{"opportunity_title", "next_action_time", "next_action_notes", "opportunity_notes", "estimated_close_time",
			"include_in_forecast", "projected_revenue_low", "projected_revenue_high", "contact_id", "stage_id", "user_id", "custom_fields", "affiliate_id"},
		required: []string{"contact_id", "opportunity_title", "stage_id"},
		list: v2Params{list: true, fields: opportunityFields,
			filters: map[string]v2Filter{"stage_id": {"stage.id", "exact"}, "user_id": {"user.id", "exact"}, "contact_id": {"contact.id", "exact"},
				"opportunity_title": {"opportunity_title", "prefix"}, "affiliate_id": {"affiliate_id", "exact"}, "opportunity_id": {"id", "number"},
				"ids": {"id", "set"}, "contact_city": {"contact.city", "prefix"}, "contact_state": {"contact.state", "prefix"},
				"contact_phone": {"contact.phone_number", "prefix"}, "projected_revenue_high": {"projected_revenue_high", "number"},
				"projected_revenue_low": {"projected_revenue_low", "number"}, "lead_source_name": {"lead_source", "prefix"}},
			orders: map[string]string{"next_action_time": "next_action_time", "contact_name": "contact.first_name",
				"opportunity_title": "opportunity_title", "created_time": "created_time", "update_time": "last_updated_time"}},
		optional: []string{"custom_fields"},
		shape:    shapeOpportunity, stamps: [2]string{"created_time", "last_updated_time"}},
	{name: "notes", path: "/notes", idParam: "note_id", singular: "Note", parent: "contact_id",
		create:   []string{"title", "text", "type", "user_id", "is_pinned", "custom_fields"},
		required: []string{"user_id"},
		update:   []string{"title", "text", "type", "user_id", "is_pinned", "custom_fields", "contact_id"},
		list: v2Params{list: true, fields: []string{"custom_fields"},
			filters: map[string]v2Filter{"id": {"id", "number"}, "ids": {"id", "set"}, "title": {"title", "contains"}, "contact_id": {"contact_id", "exact"},
				"assigned_to_user_id": {"assigned_to_user.id", "exact"}, "since_time": {"update_time", "since"}, "until_time": {"update_time", "until"}},
			orders: map[string]string{"id": "id", "create_time": "create_time", "update_time": "update_time"}},
		optional: []string{"custom_fields"},
		shape:    shapeNote, stamps: [2]string{"create_time", "update_time"}},
	{name: "tasks", path: "/tasks", idParam: "task_id", singular: "Task",
		create: []string{"title", "description", "type", "priority", "completed", "completion_time", "due_time", "remind_time_mins",
			"assigned_to_user_id", "contact_id", "opportunity_id", "accepted", "custom_fields"},
		required: []string{"assigned_to_user_id"},
		list: v2Params{list: true, fields: []string{"custom_fields"},
			filters: map[string]v2Filter{"contact_id": {"contact_id", "exact"}, "has_due_date": {"_has_due_date", "bool"}, "is_completed": {"completed", "bool"},
				"user_id": {"assigned_to_user_id", "exact"}, "opportunity_id": {"opportunity_id", "exact"}, "task_ids": {"id", "set"},
				"priority": {"priority", "exact"}, "since_time": {"modification_time", "since"}, "until_time": {"modification_time", "until"},
				"title": {"title", "prefix"}},
			orders: map[string]string{"id": "id", "create_time": "create_time", "due_time": "due_time", "update_time": "modification_time"}},
		optional: []string{"custom_fields"},
		shape:    shapeTask, stamps: [2]string{"create_time", "modification_time"}},
	{name: "orders", path: "/orders", idParam: "order_id", singular: "Order",
		create: []string{"notes", "terms", "title", "contact_id", "order_items", "order_title", "order_time", "order_type", "promo_codes",
			"lead_affiliate_id", "sales_affiliate_id", "shipping_address", "custom_fields", "sent_time", "due_time", "invoice_number",
			"external_create_user", "external_create_time", "external_update_time"},
		required: []string{"contact_id", "order_time", "order_title", "order_type"},
		update: []string{"notes", "terms", "title", "contact_id", "order_title", "order_time", "order_type", "promo_codes", "lead_affiliate_id",
			"sales_affiliate_id", "shipping_address", "custom_fields", "sent_time", "due_time", "invoice_number", "external_create_user",
			"external_create_time", "external_update_time"},
		list: v2Params{list: true,
			filters: map[string]v2Filter{"id": {"id", "number"}, "ids": {"id", "set"}, "product_id": {"order_items.product.id", "exact"},
				"contact_id": {"contact.id", "exact"}, "invoice_id": {"invoice_id", "exact"}, "paid": {"_paid", "bool"},
				"created_since_time": {"creation_time", "since"}, "created_until_time": {"creation_time", "until"},
				"modified_since_time": {"modification_time", "since"}, "modified_until_time": {"modification_time", "until"},
				"title": {"title", "prefix"}, "order_type": {"order_type", "exact"},
				"shipping_locality": {"shipping_information.address.locality", "text"}, "shipping_region_code": {"shipping_information.address.region_code", "text"},
				"shipping_postal_code": {"shipping_information.address.postal_code", "text"}, "shipping_country_code": {"shipping_information.address.country_code", "text"}},
			orders: map[string]string{"id": "id", "order_time": "order_time", "modification_time": "modification_time"}},
		shape: shapeOrder, stamps: [2]string{"creation_time", "modification_time"}},
	{name: "products", path: "/products", idParam: "product_id", singular: "Product",
		create: []string{"name", "sku", "price", "active", "description", "shippable", "weight", "taxable", "inventory", "short_description",
			"subscription_only", "storefront_hidden", "country_taxable", "state_taxable", "city_taxable", "top_html", "bottom_html", "is_package",
			"needs_digital_delivery", "delivery_description", "inventory_limit", "inventory_count", "out_of_stock_enabled", "email_for_inventory_notifications"},
		required: []string{"name", "price", "short_description"},
		update: []string{"name", "sku", "price", "active", "description", "shippable", "weight", "taxable", "short_description",
			"subscription_only", "storefront_hidden", "country_taxable", "state_taxable", "city_taxable", "top_html", "bottom_html", "is_package",
			"needs_digital_delivery", "delivery_description", "inventory_limit", "out_of_stock_enabled", "email_for_inventory_notifications"},
		list: v2Params{list: true,
			filters: map[string]v2Filter{"name": {"name", "prefix"}, "sku": {"sku", "prefix"}, "description": {"description", "prefix"},
				"short_description": {"short_description", "prefix"}, "product_id": {"id", "number"}, "product_ids": {"id", "set"}},
			orders: map[string]string{"name": "name", "sku": "sku", "last_updated_time": "update_time"}},
		shape: shapeProduct, stamps: [2]string{"create_time", "update_time"}},
	{name: "subscriptions", path: "/subscriptions", idParam: "subscription_id", singular: "Subscription",
		create: []string{"quantity", "active", "contact_id", "subscription_plan_id", "billing_amount", "auto_charge", "max_charge_attempts",
			"days_between_retries", "start_date", "payment_method_id", "allow_tax", "allow_duplicate", "lead_affiliate_id", "sale_affiliate_id",
			"shipping_address", "promo_code", "shipping_option_id", "reason_stopped", "custom_fields"},
		required: []string{"contact_id", "subscription_plan_id"},
		update: []string{"quantity", "active", "contact_id", "subscription_plan_id", "billing_amount", "auto_charge", "max_charge_attempts",
			"days_between_retries", "billing_frequency", "billing_cycle", "next_bill_date", "end_date", "payment_method_id", "allow_tax",
			"lead_affiliate_id", "sale_affiliate_id", "shipping_address", "promo_code", "shipping_option_id", "reason_stopped", "custom_fields"},
		list: v2Params{list: true,
			filters: map[string]v2Filter{"contact_id": {"contact_id", "exact"}, "subscription_plan_id": {"subscription_plan_id", "exact"},
				"status": {"_status", "text"}, "id": {"id", "number"}, "billing_amount": {"billing_amount", "number"}, "ids": {"id", "set"},
				"subscription_plan_ids": {"subscription_plan_id", "set"}},
			orders: map[string]string{"id": "id", "contact_id": "contact_id", "subscription_plan_id": "subscription_plan_id", "modification_time": "modification_time"}},
		shape: shapeSubscription, stamps: [2]string{"", "modification_time"}},
}

func (k v2Kind) updateMembers() []string {
	if k.update != nil {
		return k.update
	}
	return k.create
}

// v2RecordRoutes serves the generic kinds, order items and payments,
// inventory changes, goals and settings.
func (s *Server) v2RecordRoutes(r chi.Router) {
	s.v2records = map[string]map[int64]map[string]any{"order_payments": {}}
	for _, k := range v2Kinds {
		s.v2records[k.name] = map[int64]map[string]any{}
		base := k.path
		if k.parent != "" {
			base = "/contacts/{" + k.parent + "}" + k.path
			r.Get(k.path, s.v2ListRecords(k)) // every contact's notes
		}
		r.Get(base, s.v2ListRecords(k))
		r.Post(base, s.v2WriteRecord(k, false))
		item := base + "/{" + k.idParam + "}"
		r.Get(item, s.v2GetRecord(k))
		r.Patch(item, s.v2WriteRecord(k, true))
		r.Delete(item, s.v2DeleteRecord(k))
	}
	r.Post("/orders/{order_id}/items", s.v2CreateOrderItem)
	r.Get("/orders/{order_id}/items/{order_item_id}", s.v2GetOrderItem)
	r.Delete("/orders/{order_id}/items/{order_item_id}", s.v2DeleteOrderItem)
	r.Get("/orders/{order_id}/payments", s.v2ListPayments)
	r.Post("/orders/{order_id}/payments", s.v2CreatePayment)
	r.Post("/products/{product_id}:adjustInventory", s.v2AdjustInventory)
}

// V2Records returns the records of a REST v2 resource ("opportunities",
// "notes", "tasks", "orders", "products", "subscriptions") as Keap answers
// them, by id, for assertions.
func (s *Server) V2Records(resource string) map[int64]map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]map[string]any{}
	for id, rec := range s.v2records[resource] {
		out[id] = jsonCopy(public(rec))
	}
	return out
}

// public drops the fake's bookkeeping members.
func public(rec map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range rec {
		if !strings.HasPrefix(k, "_") {
			out[k] = v
		}
	}
	return out
}

// parentOK checks the parent path parameter (a contact) of a nested kind.
func (s *Server) parentLocked(w http.ResponseWriter, r *http.Request, k v2Kind) (string, bool) {
	if k.parent == "" || chi.URLParam(r, k.parent) == "" {
		return "", true
	}
	id, ok := v2ID(w, r, k.parent)
	if !ok {
		return "", false
	}
	if s.contacts[id] == nil {
		writeV2Error(w, http.StatusNotFound, "Contact %d not found", id)
		return "", false
	}
	return idString(id), true
}

func (s *Server) v2ListRecords(k v2Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, ok := parseV2Query(w, r, k.list)
		if !ok {
			return
		}
		s.mu.Lock()
		parent, ok := s.parentLocked(w, r, k)
		if !ok {
			s.mu.Unlock()
			return
		}
		var recs []map[string]any
		for _, rec := range s.v2records[k.name] {
			if parent == "" || rec[k.parent] == parent {
				recs = append(recs, jsonCopy(rec))
			}
		}
		s.mu.Unlock()
		page, next := q.page(recs, k.list)
		for i, rec := range page {
			page[i] = omit(public(rec.(map[string]any)), k.optional, q.fields)
		}
		writeList(w, k.name, page, next)
	}
}

// recordLocked finds the record of the path, or writes a 404.
func (s *Server) recordLocked(w http.ResponseWriter, r *http.Request, k v2Kind) (int64, map[string]any, bool) {
	parent, ok := s.parentLocked(w, r, k)
	if !ok {
		return 0, nil, false
	}
	id, ok := v2ID(w, r, k.idParam)
	if !ok {
		return 0, nil, false
	}
	rec := s.v2records[k.name][id]
	if rec == nil || parent != "" && rec[k.parent] != parent {
		writeV2Error(w, http.StatusNotFound, "%s %d not found", k.singular, id)
		return 0, nil, false
	}
	return id, rec, true
}

func (s *Server) v2GetRecord(k v2Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, ok := parseV2Query(w, r, v2Params{fields: k.list.fields})
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, rec, ok := s.recordLocked(w, r, k); ok {
			writeJSON(w, http.StatusOK, omit(public(rec), k.optional, q.fields))
		}
	}
}

func (s *Server) v2DeleteRecord(k v2Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := parseV2Query(w, r, v2Params{}); !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if id, _, ok := s.recordLocked(w, r, k); ok {
			delete(s.v2records[k.name], id)
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

// v2WriteRecord creates (POST) or changes (PATCH, honouring update_mask) a record.
func (s *Server) v2WriteRecord(k v2Kind, existing bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := v2Params{fields: k.list.fields}
		members := k.create
		if existing {
			p.mask, members = k.updateMembers(), k.updateMembers()
		}
		q, ok := parseV2Query(w, r, p)
		if !ok {
			return
		}
		body, ok := readV2Body(w, r, members)
		if !ok {
			return
		}
		if !existing {
			for _, name := range k.required {
				if v, ok := body[name]; !ok || v == nil || v == "" {
					writeV2Error(w, http.StatusBadRequest, "%s is required", name)
					return
				}
			}
		}
		body = masked(body, q.mask)
		now := formatTime(s.stamp())
		s.mu.Lock()
		defer s.mu.Unlock()
		var rec map[string]any
		var id int64
		if existing {
			var old map[string]any
			if id, old, ok = s.recordLocked(w, r, k); !ok {
				return
			}
			rec = jsonCopy(old)
			for name, v := range old {
				if strings.HasPrefix(name, "_") {
					rec[name] = v
				}
			}
		} else {
			parent, ok := s.parentLocked(w, r, k)
			if !ok {
				return
			}
			id = s.nextIDLocked("v2:" + k.name)
			rec = map[string]any{"id": idString(id)}
			if parent != "" {
				rec[k.parent] = parent
			}
			if k.stamps[0] != "" {
				rec[k.stamps[0]] = now
			}
		}
		if msg := k.shape(s, rec, body); msg != "" {
			writeV2Error(w, http.StatusBadRequest, "%s", msg)
			return
		}
		if k.stamps[1] != "" {
			rec[k.stamps[1]] = now
		}
		s.v2records[k.name][id] = rec
		status := http.StatusCreated
		if existing {
			status = http.StatusOK
		}
		writeJSON(w, status, omit(public(rec), k.optional, q.fields))
	}
}

// copyMembers copies body's members into rec, a null member removing it.
func copyMembers(rec, body map[string]any, names ...string) {
	for _, name := range names {
		if v, ok := body[name]; ok {
			if v == nil {
				delete(rec, name)
			} else {
				rec[name] = v
			}
		}
	}
}

// refID reads an id member of body that must name an existing record.
func refID(body map[string]any, name string, exists func(int64) bool) (id int64, present bool, msg string) {
	v, ok := body[name]
	if !ok || v == nil {
		return 0, false, ""
	}
	id, ok = parseIDString(v)
	if !ok {
		return 0, true, fmt.Sprintf("Invalid %s %v: use an id such as \"12\"", name, v)
	}
	if exists != nil && !exists(id) {
		return 0, true, fmt.Sprintf("Invalid %s %d: no such record", name, id)
	}
	return id, true, ""
}

func (s *Server) contactExists(id int64) bool { return s.contacts[id] != nil }

func shapeOpportunity(s *Server, rec, body map[string]any) string {
	copyMembers(rec, body, "opportunity_title", "next_action_time", "next_action_notes", "opportunity_notes", "estimated_close_time",
		"include_in_forecast", "projected_revenue_low", "projected_revenue_high", "custom_fields", "affiliate_id")
	if id, ok, msg := refID(body, "contact_id", s.contactExists); msg != "" {
		return msg
	} else if ok {
		c := s.contacts[id]
		rec["contact"] = compact(map[string]any{"id": idString(id), "email": c.email("EMAIL1"), "first_name": c.str("given_name"),
			"last_name": c.str("family_name"), "job_title": c.str("job_title")})
	}
	if id, ok, msg := refID(body, "stage_id", nil); msg != "" {
		return msg
	} else if ok {
		rec["stage"] = map[string]any{"id": idString(id), "name": fmt.Sprintf("Stage %d", id)}
	}
	if id, ok, msg := refID(body, "user_id", nil); msg != "" {
		return msg
	} else if ok {
		rec["user"] = map[string]any{"id": idString(id)}
	}
	return ""
}

func shapeNote(s *Server, rec, body map[string]any) string {
	copyMembers(rec, body, "title", "text", "type", "custom_fields")
	if id, ok, msg := refID(body, "contact_id", s.contactExists); msg != "" {
		return msg
	} else if ok {
		rec["contact_id"] = idString(id)
	}
	if id, ok, msg := refID(body, "user_id", nil); msg != "" {
		return msg
	} else if ok {
		rec["assigned_to_user"] = map[string]any{"id": idString(id)}
		if rec["created_by_user_id"] == nil {
			rec["created_by_user_id"] = idString(id)
		}
		rec["last_updated_by_user_id"] = idString(id)
	}
	if pinned, ok := body["is_pinned"].(bool); ok {
		delete(rec, "pinned_at")
		if pinned {
			rec["pinned_at"] = formatTime(s.stamp())
		}
	}
	return ""
}

func shapeTask(s *Server, rec, body map[string]any) string {
	copyMembers(rec, body, "title", "description", "type", "priority", "completed", "completion_time", "due_time", "remind_time_mins",
		"accepted", "custom_fields")
	for _, name := range []string{"assigned_to_user_id", "opportunity_id"} {
		if id, ok, msg := refID(body, name, nil); msg != "" {
			return msg
		} else if ok {
			rec[name] = idString(id)
		}
	}
	if id, ok, msg := refID(body, "contact_id", s.contactExists); msg != "" {
		return msg
	} else if ok {
		rec["contact_id"] = idString(id)
	}
	if p, ok := rec["priority"].(string); ok && !slices.Contains([]string{"CRITICAL", "ESSENTIAL", "NONESSENTIAL"}, p) {
		return "Invalid priority " + p + ": use CRITICAL, ESSENTIAL or NONESSENTIAL"
	}
	if rec["completed"] == nil {
		rec["completed"] = false
	}
	if rec["created_by_user_id"] == nil {
		rec["created_by_user_id"] = rec["assigned_to_user_id"]
	}
	rec["_has_due_date"] = rec["due_time"] != nil
	return ""
}

func shapeOrder(s *Server, rec, body map[string]any) string {
	copyMembers(rec, body, "notes", "terms", "order_time", "order_type", "lead_affiliate_id", "sales_affiliate_id", "custom_fields",
		"sent_time", "due_time", "invoice_number", "external_create_user", "external_create_time", "external_update_time")
	if t, ok := body["order_title"]; ok {
		rec["title"] = t
	}
	if t, ok := body["title"]; ok && t != nil {
		rec["title"] = t
	}
	if t, ok := rec["order_type"].(string); ok && t != "ONLINE" && t != "OFFLINE" {
		return "Invalid order_type " + t + ": use ONLINE or OFFLINE"
	}
	if codes, ok := body["promo_codes"].([]any); ok && len(codes) > 0 {
		rec["promo_code"] = fmt.Sprint(codes[0])
	}
	if id, ok, msg := refID(body, "contact_id", s.contactExists); msg != "" {
		return msg
	} else if ok {
		c := s.contacts[id]
		rec["contact"] = compact(map[string]any{"id": idString(id), "email": c.email("EMAIL1"), "given_name": c.str("given_name"), "family_name": c.str("family_name")})
	}
	if a, ok := body["shipping_address"].(map[string]any); ok {
		rec["shipping_information"] = map[string]any{"address": compact(map[string]any{"line1": a["line1"], "line2": a["line2"],
			"locality": a["locality"], "region_code": a["region"], "postal_code": a["zip_code"], "country_code": a["country_code"]})}
	}
	if rec["source_type"] == nil {
		rec["source_type"], rec["allow_payment"], rec["allow_paypal"] = "API", true, false
		rec["invoice_id"] = rec["id"]
		rec["order_items"] = []any{}
	}
	if items, ok := body["order_items"].([]any); ok {
		for _, raw := range items {
			item, _ := raw.(map[string]any)
			out, msg := s.orderItemLocked(item)
			if msg != "" {
				return msg
			}
			rec["order_items"] = append(rec["order_items"].([]any), out)
		}
	}
	s.totalOrderLocked(rec)
	return ""
}

// money is a CurrencyValue of an amount in cents.
func money(cents int64) map[string]any {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return map[string]any{"amount": cents, "currency_code": "USD", "formatted_amount": fmt.Sprintf("%s$%d.%02d", sign, cents/100, cents%100)}
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

// orderItemLocked turns a CreateOrderItemRequest into an OrderItem.
func (s *Server) orderItemLocked(body map[string]any) (map[string]any, string) {
	if body == nil {
		return nil, "Invalid order item: use an object"
	}
	allowed := []string{"name", "description", "quantity", "notes", "product_id", "subscription_plan_id", "subscription_plan_description",
		"item_type", "price_per_unit", "cost_per_unit", "line1", "line2", "locality", "region", "company", "phone", "zip_code", "zip_four",
		"country_code", "first_name", "middle_name", "last_name", "is_invoice_to_company"}
	for k := range body {
		if !slices.Contains(allowed, k) {
			return nil, "Unknown order item field " + k
		}
	}
	qty, ok := number(body["quantity"])
	if !ok || qty <= 0 || qty != math.Trunc(qty) {
		return nil, "quantity is required: a positive whole number"
	}
	item := map[string]any{"id": idString(s.nextIDLocked("v2:order_items")), "quantity": int64(qty), "item_type": cmp.Or(fmt.Sprint(body["item_type"]), "PRODUCT")}
	if body["item_type"] == nil {
		item["item_type"] = "PRODUCT"
	}
	copyMembers(item, body, "name", "description", "notes")
	price := int64(-1)
	if id, present, msg := refID(body, "product_id", func(id int64) bool { return s.v2records["products"][id] != nil }); msg != "" {
		return nil, msg
	} else if present {
		p := s.v2records["products"][id]
		item["product"] = compact(map[string]any{"id": idString(id), "name": p["name"], "sku": p["sku"], "description": p["description"],
			"shippable": p["shippable"], "taxable": p["taxable"]})
		if item["name"] == nil {
			item["name"] = p["name"]
		}
		if m, ok := p["price"].(map[string]any); ok {
			price, _ = m["amount"].(int64)
			if n, ok := m["amount"].(json.Number); ok {
				price, _ = n.Int64()
			}
		}
	}
	if v, ok := number(body["price_per_unit"]); ok {
		price = int64(math.Round(v * 100))
	}
	if price < 0 {
		return nil, "price_per_unit is required for an item without a product_id"
	}
	item["price_per_unit"] = money(price)
	if v, ok := number(body["cost_per_unit"]); ok {
		item["cost_per_unit"] = money(int64(math.Round(v * 100)))
	}
	return item, ""
}

// totalOrderLocked derives an order's totals and status from its items and payments.
func (s *Server) totalOrderLocked(rec map[string]any) {
	var total, paid int64
	items, _ := rec["order_items"].([]any)
	for _, raw := range items {
		item := jsonCopy(raw)
		qty, _ := number(item["quantity"])
		unit, _ := number(item["price_per_unit"].(map[string]any)["amount"])
		total += int64(qty) * int64(unit)
	}
	for _, p := range s.v2records["order_payments"] {
		if p["_order_id"] == rec["id"] {
			amount, _ := number(p["amount"])
			paid += int64(math.Round(amount * 100))
		}
	}
	rec["total"], rec["total_paid"], rec["total_due"] = money(total), money(paid), money(total-paid)
	rec["status"] = "DRAFT"
	rec["_paid"] = total > 0 && paid >= total
	if rec["_paid"] == true {
		rec["status"] = "PAID"
	}
}

func shapeProduct(s *Server, rec, body map[string]any) string {
	copyMembers(rec, body, "name", "sku", "active", "description", "shippable", "weight", "taxable", "short_description",
		"subscription_only", "storefront_hidden", "country_taxable", "state_taxable", "city_taxable", "top_html", "bottom_html", "is_package",
		"needs_digital_delivery", "delivery_description")
	if v, ok := body["price"]; ok {
		n, isNumber := v.(json.Number)
		cents, err := n.Int64()
		if !isNumber || err != nil || cents < 0 {
			return "Invalid price: use a whole number of cents, 0 or more (1250 is $12.50)"
		}
		rec["price"] = money(cents)
	}
	inv, _ := rec["inventory"].(map[string]any)
	if inv == nil {
		inv = map[string]any{"inventory_count": int64(0), "inventory_limit": int64(0), "out_of_stock_enabled": false}
	}
	if given, ok := body["inventory"].(map[string]any); ok {
		for k, v := range given {
			inv[k] = v
		}
	}
	for _, k := range []string{"inventory_limit", "inventory_count", "out_of_stock_enabled", "email_for_inventory_notifications"} {
		if v, ok := body[k]; ok {
			inv[k] = v
		}
	}
	rec["inventory"] = inv
	if rec["active"] == nil {
		rec["active"] = true
	}
	if rec["categories"] == nil {
		rec["categories"], rec["options"], rec["subscription_plans"] = []any{}, []any{}, []any{}
	}
	return ""
}

func shapeSubscription(s *Server, rec, body map[string]any) string {
	copyMembers(rec, body, "quantity", "active", "billing_amount", "auto_charge", "max_charge_attempts", "days_between_retries", "start_date",
		"payment_method_id", "allow_tax", "lead_affiliate_id", "sale_affiliate_id", "promo_code", "shipping_option_id", "reason_stopped",
		"custom_fields", "billing_frequency", "billing_cycle", "next_bill_date", "end_date")
	if id, ok, msg := refID(body, "contact_id", s.contactExists); msg != "" {
		return msg
	} else if ok {
		rec["contact_id"] = idString(id)
	}
	if id, ok, msg := refID(body, "subscription_plan_id", nil); msg != "" {
		return msg
	} else if ok {
		rec["subscription_plan_id"] = idString(id)
	}
	if rec["active"] == nil {
		rec["active"] = true
	}
	if rec["quantity"] == nil {
		rec["quantity"] = int64(1)
	}
	rec["_status"] = map[bool]string{true: "ACTIVE", false: "INACTIVE"}[rec["active"] == true]
	return ""
}

// moveContactRecordsLocked hands a merged-away contact's records to the kept one.
func (s *Server) moveContactRecordsLocked(from, to int64) {
	f, t := idString(from), idString(to)
	for _, kind := range []string{"notes", "tasks", "subscriptions"} {
		for _, rec := range s.v2records[kind] {
			if rec["contact_id"] == f {
				rec["contact_id"] = t
			}
		}
	}
	for _, kind := range []string{"opportunities", "orders"} {
		for _, rec := range s.v2records[kind] {
			if c, ok := rec["contact"].(map[string]any); ok && c["id"] == f {
				c["id"] = t
			}
		}
	}
}

// Order items and payments.

func (s *Server) orderLocked(w http.ResponseWriter, r *http.Request) map[string]any {
	id, ok := v2ID(w, r, "order_id")
	if !ok {
		return nil
	}
	rec := s.v2records["orders"][id]
	if rec == nil {
		writeV2Error(w, http.StatusNotFound, "Order %d not found", id)
	}
	return rec
}

func (s *Server) v2CreateOrderItem(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	body, ok := readV2Body(w, r, []string{"name", "description", "quantity", "notes", "product_id", "subscription_plan_id",
		"subscription_plan_description", "item_type", "price_per_unit", "cost_per_unit", "line1", "line2", "locality", "region", "company",
		"phone", "zip_code", "zip_four", "country_code", "first_name", "middle_name", "last_name", "is_invoice_to_company"})
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	order := s.orderLocked(w, r)
	if order == nil {
		return
	}
	item, msg := s.orderItemLocked(body)
	if msg != "" {
		writeV2Error(w, http.StatusBadRequest, "%s", msg)
		return
	}
	order["order_items"] = append(order["order_items"].([]any), item)
	order["modification_time"] = formatTime(s.stamp())
	s.totalOrderLocked(order)
	writeJSON(w, http.StatusCreated, item)
}

// orderItemIndex finds the item of the path in order, or writes a 404.
func orderItemIndex(w http.ResponseWriter, r *http.Request, order map[string]any) int {
	want := chi.URLParam(r, "order_item_id")
	items, _ := order["order_items"].([]any)
	i := slices.IndexFunc(items, func(x any) bool { m, _ := x.(map[string]any); return m["id"] == want })
	if i < 0 {
		writeV2Error(w, http.StatusNotFound, "Order item %s not found in order %v", want, order["id"])
	}
	return i
}

func (s *Server) v2GetOrderItem(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if order := s.orderLocked(w, r); order != nil {
		if i := orderItemIndex(w, r, order); i >= 0 {
			writeJSON(w, http.StatusOK, order["order_items"].([]any)[i])
		}
	}
}

func (s *Server) v2DeleteOrderItem(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if order := s.orderLocked(w, r); order != nil {
		if i := orderItemIndex(w, r, order); i >= 0 {
			order["order_items"] = slices.Delete(order["order_items"].([]any), i, i+1)
			s.totalOrderLocked(order)
			w.WriteHeader(http.StatusNoContent)
		}
	}
}

var paymentListParams = v2Params{list: true,
	filters: map[string]v2Filter{"invoice_id": {"invoice_id", "exact"}, "payment_id": {"payment_id", "exact"}, "amount": {"amount", "number"},
		"pay_status": {"pay_status", "exact"}, "skip_commission": {"skip_commission", "bool"}},
	orders: map[string]string{"invoice_id": "invoice_id", "payment_id": "payment_id", "amount": "amount", "pay_time": "pay_time",
		"pay_status": "pay_status", "skip_commission": "skip_commission", "last_updated_time": "last_updated_time"}}

func (s *Server) v2ListPayments(w http.ResponseWriter, r *http.Request) {
	q, ok := parseV2Query(w, r, paymentListParams)
	if !ok {
		return
	}
	s.mu.Lock()
	order := s.orderLocked(w, r)
	var recs []map[string]any
	if order != nil {
		for _, p := range s.v2records["order_payments"] {
			if p["_order_id"] == order["id"] {
				recs = append(recs, jsonCopy(p))
			}
		}
	}
	s.mu.Unlock()
	if order == nil {
		return
	}
	page, next := q.page(recs, paymentListParams)
	for i, rec := range page {
		page[i] = public(rec.(map[string]any))
	}
	writeList(w, "invoice_order_payments", page, next)
}

// v2CreatePayment records a manual payment against an order.
func (s *Server) v2CreatePayment(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	body, ok := readV2Body(w, r, []string{"notes", "payment_method_id", "payment_method_type", "payment_time", "payment_amount",
		"apply_to_commissions", "external_source", "external_source_value", "external_status_value", "external_create_time",
		"external_update_time", "external_create_user"})
	if !ok {
		return
	}
	amount, okAmount := number(body["payment_amount"])
	_, okCommission := body["apply_to_commissions"].(bool)
	if !okAmount || amount <= 0 || !okCommission {
		writeV2Error(w, http.StatusBadRequest, "payment_amount (a positive amount, such as 12.5) and apply_to_commissions (true or false) are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	order := s.orderLocked(w, r)
	if order == nil {
		return
	}
	now := formatTime(s.stamp())
	id := s.nextIDLocked("v2:order_payments")
	payTime, _ := body["payment_time"].(string)
	p := map[string]any{"id": idString(id), "_order_id": order["id"], "amount": amount, "note": body["notes"], "invoice_id": order["invoice_id"],
		"payment_id": idString(id), "pay_time": cmp.Or(payTime, now), "pay_status": "MANUAL_PAID", "last_updated_time": now,
		"skip_commission": body["apply_to_commissions"] == false}
	s.v2records["order_payments"][id] = compact(p)
	order["modification_time"] = now
	s.totalOrderLocked(order)
	writeJSON(w, http.StatusCreated, map[string]any{"id": idString(id), "invoice_id": order["invoice_id"], "payment_amount": amount,
		"payment_status_message": "Payment recorded", "transaction_id": idString(id)})
}

// v2AdjustInventory increases or decreases a product's inventory count.
func (s *Server) v2AdjustInventory(w http.ResponseWriter, r *http.Request) {
	id, ok := v2ID(w, r, "product_id")
	if !ok {
		return
	}
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	body, ok := readV2Body(w, r, []string{"type", "quantity"})
	if !ok {
		return
	}
	typ, _ := body["type"].(string)
	qty, okQty := number(body["quantity"])
	if typ != "INCREASE" && typ != "DECREASE" || !okQty || qty <= 0 || qty != math.Trunc(qty) {
		writeV2Error(w, http.StatusBadRequest, "type (INCREASE or DECREASE) and quantity (a positive whole number) are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.v2records["products"][id]
	if p == nil {
		writeV2Error(w, http.StatusNotFound, "Product %d not found", id)
		return
	}
	inv := p["inventory"].(map[string]any)
	count, _ := number(inv["inventory_count"])
	if typ == "DECREASE" {
		qty = -qty
	}
	inv["inventory_count"] = int64(count + qty)
	p["update_time"] = formatTime(s.stamp())
	writeJSON(w, http.StatusOK, public(p))
}

// Automation goals.

type goal struct {
	automationID, goalID int64
	integration, call    string
}

// AchievedGoal is one goal achievement the fake recorded.
type AchievedGoal struct {
	ContactID         int64
	Integration, Call string
}

// AddGoal declares an API goal (an integration and call name, as in Keap's
// campaign builder) of a new automation and returns the automation's and the goal's ids.
func (s *Server) AddGoal(integration, callName string) (automationID, goalID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := goal{automationID: s.nextIDLocked("automation"), goalID: s.nextIDLocked("goal"), integration: integration, call: callName}
	s.goals = append(s.goals, g)
	return g.automationID, g.goalID
}

// AchievedGoals returns the goals achieved so far, in order.
func (s *Server) AchievedGoals() []AchievedGoal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.achieved)
}

// AchieveGoalLocked achieves the goals matching integration and callName for
// a contact and returns one result per matching goal.
func (s *Server) achieveGoalLocked(contactID int64, integration, callName string) []any {
	results := []any{}
	for _, g := range s.goals {
		if strings.EqualFold(g.integration, integration) && strings.EqualFold(g.call, callName) {
			results = append(results, map[string]any{"success": true, "message": "Goal achieved", "automation_id": g.automationID, "goal_id": g.goalID})
		}
	}
	s.achieved = append(s.achieved, AchievedGoal{ContactID: contactID, Integration: integration, Call: callName})
	return results
}

func (s *Server) v2AchieveGoal(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	body, ok := readV2Body(w, r, []string{"integration", "call_name", "automation_id", "goal_id", "contact_id"})
	if !ok {
		return
	}
	contactID, okContact := parseIDString(body["contact_id"])
	integration, _ := body["integration"].(string)
	callName, _ := body["call_name"].(string)
	if !okContact || integration == "" || callName == "" {
		writeV2Error(w, http.StatusBadRequest, "contact_id, integration and call_name are required (the goal's integration and call name as set in the campaign builder)")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.contacts[contactID] == nil {
		writeV2Error(w, http.StatusNotFound, "Contact %d not found", contactID)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": s.achieveGoalLocked(contactID, integration, callName)})
}

// Settings.

func (s *Server) v2ContactOptionTypes(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"option_types": []string{"Prospect", "Customer", "Partner", "Vendor"}})
}

func (s *Server) v2ApplicationEnabled(w http.ResponseWriter, r *http.Request) {
	if _, ok := parseV2Query(w, r, v2Params{}); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"isEnabled": true})
}

// v2ApplicationConfiguration answers the application's settings: the
// application module always, the others when fields names them.
func (s *Server) v2ApplicationConfiguration(w http.ResponseWriter, r *http.Request) {
	modules := []string{"AFFILIATE", "APPOINTMENT", "CONTACT", "ECOMMERCE", "EMAIL", "FORMS", "FULFILLMENT", "INVOICE", "NOTE", "OPPORTUNITY", "TASK", "TEMPLATE"}
	q, ok := parseV2Query(w, r, v2Params{fields: modules})
	if !ok {
		return
	}
	all := map[string]any{
		"CONTACT": map[string]any{"contact_types": "Prospect,Customer,Partner,Vendor", "title_types": "Dr.,Mr.,Mrs.,Ms.",
			"suffix_types": "Jr.,Sr.,II,III", "phone_types": "Work,Home,Mobile,Other", "fax_types": "Work,Home,Other"},
		"ECOMMERCE": map[string]any{"currency": "USD", "default_country": "United States", "track_inventory": true,
			"default_to_auto_charge": true, "payment_types": "Credit Card,Cash,Check"},
		"EMAIL":       map[string]any{"append_contact_key_to_links": false},
		"FORMS":       map[string]any{"spam_filters_enabled": true},
		"INVOICE":     map[string]any{"tax_label": "Tax"},
		"OPPORTUNITY": map[string]any{"default_stage": "1"},
		"AFFILIATE":   map[string]any{"choose_affiliate": false},
		"APPOINTMENT": map[string]any{"appointment_types": "Call,Meeting"},
		"FULFILLMENT": map[string]any{"default_message_to": ""},
		"NOTE":        map[string]any{"appointment_types": "Call,Email,Other"},
		"TASK":        map[string]any{"appointment_types": "Call,Email,Other"},
		"TEMPLATE":    map[string]any{"default_user_id": "1001"},
	}
	out := map[string]any{"application": map[string]any{
		"company":             map[string]any{"name": "Sandbox Company (" + AppName + ")", "email": "owner@" + AppName + ".example.com", "country": "United States", "city": "Phoenix", "state": "Arizona"},
		"time_zone":           "America/New_York",
		"default_view_locale": "en_US",
	}}
	for _, f := range q.fields {
		out[strings.ToLower(f)] = compact(all[f].(map[string]any))
	}
	writeJSON(w, http.StatusOK, out)
}

// chiParam is a path parameter, percent-decoded.
func chiParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
}
