package proxy

import (
	"context"
	"time"

	"github.com/connectord/connectord/internal/apperr"
	"github.com/connectord/connectord/internal/instances"
)

// Bridge answers an XML-RPC methodCall for an instance itself, over Keap's
// REST v2 (the xmlrpcbridge package): the answer is a methodResponse, a
// fault included; an error is connectord's own (*apperr.Error).
type Bridge interface {
	Call(ctx context.Context, inst *instances.Instance, body []byte) ([]byte, error)
}

// KeapXMLRPCSunset is when Keap's XML-RPC API is gone: the end of 31 December 2026.
func KeapXMLRPCSunset() time.Time { return time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) }

// XMLRPC is how the proxy answers POST /proxy/crm/xmlrpc/v1, following each
// instance's xmlrpc.mode.
type XMLRPC struct {
	// Bridge answers the calls of instances in bridge mode; nil answers them
	// 501, naming the mode and what to do.
	Bridge Bridge
	// Sunset is when passthrough calls start to be refused (410, saying to
	// use the bridge); zero means KeapXMLRPCSunset.
	Sunset time.Time
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (x XMLRPC) withDefaults() XMLRPC {
	if x.Sunset.IsZero() {
		x.Sunset = KeapXMLRPCSunset()
	}
	if x.Now == nil {
		x.Now = time.Now
	}
	return x
}

// checkPassthrough refuses a passthrough call once Keap's XML-RPC is gone.
func (x XMLRPC) checkPassthrough(inst *instances.Instance) error {
	if x.Now().Before(x.Sunset) {
		return nil
	}
	return apperr.Errorf(apperr.Gone, "instance %d has xmlrpc.mode passthrough, and Keap's XML-RPC API is gone since %s: "+
		"set xmlrpc.mode to bridge (PATCH /instances/%d with {\"configuration\": {\"xmlrpc.mode\": \"bridge\"}}) and connectord answers the same calls over Keap's REST v2",
		inst.ID, x.Sunset.UTC().Format("2 January 2006 15:04 MST"), inst.ID)
}

// Bridge answers a bridge-mode call (Call.Bridged): the bridge's
// methodResponse, or connectord's own error (501 while this build has no
// bridge, naming the mode and how to change it).
func (p *Proxy) Bridge(ctx context.Context, c *Call) ([]byte, error) {
	if p.xmlrpc.Bridge == nil {
		return nil, apperr.Errorf(apperr.NotImplemented, "instance %d has xmlrpc.mode bridge, and this connectord has no XML-RPC bridge yet: "+
			"set xmlrpc.mode to passthrough (PATCH /instances/%d with {\"configuration\": {\"xmlrpc.mode\": \"passthrough\"}}) while Keap still answers XML-RPC",
			c.Instance.ID, c.Instance.ID)
	}
	return p.xmlrpc.Bridge.Call(ctx, c.Instance, c.Body)
}
