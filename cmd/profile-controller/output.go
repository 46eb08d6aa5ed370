package main

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// apiVersion versions every JSON and YAML document the CLI prints, next to a "kind" naming the
// document (StatusReport, ProfileDescription, Version). Fields are only ever added within a
// version; a rename or removal makes it profile-controller/v2.
const apiVersion = "profile-controller/v1"

// writeDocument writes doc as indented JSON or as YAML (the same field names: YAML is produced
// from the JSON form).
func writeDocument(w io.Writer, format string, doc any) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "yaml":
		b, err := yaml.Marshal(doc)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown output format %q", format)
}
