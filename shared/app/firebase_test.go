package app_test

import (
	"bytes"
	"strings"
	"testing"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// TestOpenFirebase builds the deps the functions build on Cloud Functions,
// against the in-process RTDB server: the store must be the RTDB one and
// keep what is written through it.
func TestOpenFirebase(t *testing.T) {
	t.Setenv("FIREBASE_DATABASE_EMULATOR_HOST", "")
	db := rtdbfake.Start(t)
	d, err := app.Build(ctx(t), app.Options{
		Environ:    []string{"GATEKEEPER=user_token", "ADMIN_KEY=k", "GATEKEEPER_STORE=firebase_rtdb", "FIREBASE_RTDB_URL=" + db.URL(), "FIREBASE_USERS_REF_NAME=tg/users"},
		LogOutput:  &bytes.Buffer{},
		OpenShared: app.OpenFirebase,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Store.(*rtdb.Store); !ok {
		t.Fatalf("store is %T, want *rtdb.Store", d.Store)
	}
	u, err := (&users.Service{Store: d.Store, Defaults: d.Config.TokenQuota, Now: d.Now}).Create(ctx(t), users.Patch{})
	if err != nil {
		t.Fatal(err)
	}
	if db.Data("tg/users/"+u.Token) == nil {
		t.Fatalf("user not written under FIREBASE_USERS_REF_NAME")
	}
	if err := d.Store.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFirebaseUnreachable(t *testing.T) {
	t.Setenv("FIREBASE_DATABASE_EMULATOR_HOST", "")
	db := rtdbfake.Start(t)
	url := db.URL()
	db.Close()
	_, err := app.Build(ctx(t), app.Options{
		Environ:    []string{"GATEKEEPER_STORE=firebase_rtdb", "FIREBASE_RTDB_URL=" + url},
		LogOutput:  &bytes.Buffer{},
		OpenShared: app.OpenFirebase,
	})
	if err == nil || !strings.Contains(err.Error(), "FIREBASE_RTDB_URL") {
		t.Fatalf("err = %v, want an error naming FIREBASE_RTDB_URL", err)
	}
	_, err = app.Build(ctx(t), app.Options{
		Environ:    []string{"GATEKEEPER_STORE=firebase_rtdb", "FIREBASE_RTDB_URL=" + url, "FIREBASE_KEY=not base64!"},
		LogOutput:  &bytes.Buffer{},
		OpenShared: app.OpenFirebase,
	})
	if err == nil || !strings.Contains(err.Error(), "FIREBASE_KEY") || strings.Contains(err.Error(), "not base64!") {
		t.Fatalf("err = %v, want an error naming FIREBASE_KEY without its value", err)
	}
}
