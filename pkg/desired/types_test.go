package desired

import (
	"reflect"
	"testing"
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
)

// TestProfileEqualSeesEveryField changes each field of a Profile in turn: Equal must tell every
// change, so that a field added later cannot be forgotten by it.
func TestProfileEqualSeesEveryField(t *testing.T) {
	base := Profile{Name: "a", Served: []string{"a"}}
	if !base.Equal(&Profile{Name: "a", Served: []string{"a"}}) {
		t.Fatal("equal profiles are not Equal")
	}
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		changed := base
		changed.Served = []string{"a"}
		f := reflect.ValueOf(&changed).Elem().Field(i)
		switch f.Interface().(type) {
		case string:
			f.SetString("changed")
		case bool:
			f.SetBool(true)
		case int:
			f.SetInt(7)
		case Intent:
			f.Set(reflect.ValueOf(Down))
		case time.Time:
			f.Set(reflect.ValueOf(time.Unix(1, 0)))
		case safefs.FileID:
			f.Set(reflect.ValueOf(safefs.FileID{Ino: 9}))
		case []string:
			f.Set(reflect.ValueOf([]string{"b"}))
		default:
			t.Fatalf("field %s: type %s not covered by this test", typ.Field(i).Name, f.Type())
		}
		if base.Equal(&changed) {
			t.Errorf("field %s changed, yet Equal", typ.Field(i).Name)
		}
	}
	if base.Equal(&Profile{Name: "a"}) {
		t.Error("Served nil vs [a] is Equal")
	}
	if (&Profile{Name: "a", Served: []string{}}).Equal(&Profile{Name: "a"}) {
		t.Error("Served empty vs nil is Equal")
	}
	if base.Equal(nil) || !(*Profile)(nil).Equal(nil) {
		t.Error("nil handling")
	}
}
