// Package client is a Go client for connectord's HTTP API, generated from
// api/openapi.yaml by oapi-codegen (client.gen.go; run go generate ./client
// after changing the document). TestGenerated_IsCurrent fails when it is not.
//
// It must hold nothing written by hand but this file and the generator's
// configuration: the contract is the document.
package client

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../api/openapi.yaml
