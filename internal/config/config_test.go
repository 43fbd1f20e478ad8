package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type testRedis struct {
	Addr     string `mapstructure:"addr"`
	Password string `mapstructure:"password"`
}

type testPoll struct {
	ID       string     `mapstructure:"id"`
	Options  []string   `mapstructure:"options"`
	ClosesAt *time.Time `mapstructure:"closes_at"`
}

type testConfig struct {
	Listen  string        `mapstructure:"listen"`
	Timeout time.Duration `mapstructure:"timeout"`
	Redis   testRedis     `mapstructure:"redis"`
	Keys    []string      `mapstructure:"keys"`
	Polls   []testPoll    `mapstructure:"polls"`
}

func defaults() testConfig {
	return testConfig{
		Listen: ":8080", Timeout: 2 * time.Second,
		Redis: testRedis{Addr: "127.0.0.1:6379"},
		Keys:  []string{"default-key"},
		Polls: []testPoll{{ID: "cats-vs-dogs", Options: []string{"cats", "dogs"}}},
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "password")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	file := filepath.Join(dir, "surge.yaml")
	os.WriteFile(file, []byte("listen: \":7000\"\nredis:\n  addr: file:6379\n"), 0o600)

	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, c testConfig)
	}{
		{"defaults", nil, nil, func(t *testing.T, c testConfig) {
			if !reflect.DeepEqual(c, defaults()) {
				t.Fatalf("got %+v", c)
			}
		}},
		{"file", map[string]string{"SURGE_CONFIG": file}, nil, func(t *testing.T, c testConfig) {
			if c.Listen != ":7000" || c.Redis.Addr != "file:6379" || c.Timeout != 2*time.Second {
				t.Fatalf("got %+v", c)
			}
		}},
		{"env over file", map[string]string{"SURGE_CONFIG": file, "SURGE_REDIS_ADDR": "env:6379", "SURGE_TIMEOUT": "5s"}, nil,
			func(t *testing.T, c testConfig) {
				if c.Listen != ":7000" || c.Redis.Addr != "env:6379" || c.Timeout != 5*time.Second {
					t.Fatalf("got %+v", c)
				}
			}},
		{"secret from _FILE", map[string]string{"SURGE_REDIS_PASSWORD_FILE": secret}, nil, func(t *testing.T, c testConfig) {
			if c.Redis.Password != "s3cret" {
				t.Fatalf("password = %q", c.Redis.Password)
			}
		}},
		{"flag over env", map[string]string{"SURGE_LISTEN": ":1"}, []string{"--listen", ":2"}, func(t *testing.T, c testConfig) {
			if c.Listen != ":2" {
				t.Fatalf("listen = %q", c.Listen)
			}
		}},
		{"comma list", map[string]string{"SURGE_KEYS": "a,b"}, nil, func(t *testing.T, c testConfig) {
			if !reflect.DeepEqual(c.Keys, []string{"a", "b"}) {
				t.Fatalf("keys = %q", c.Keys)
			}
		}},
		{"JSON structures", map[string]string{"SURGE_POLLS": `[{"id":"tea","options":["yes","no"]}]`}, nil,
			func(t *testing.T, c testConfig) {
				want := []testPoll{{ID: "tea", Options: []string{"yes", "no"}}}
				if !reflect.DeepEqual(c.Polls, want) {
					t.Fatalf("polls = %+v", c.Polls)
				}
			}},
		{"RFC 3339 times", map[string]string{"SURGE_POLLS": `[{"id":"tea","options":["yes","no"],"closes_at":"2027-02-08T00:00:00+01:00"}]`}, nil,
			func(t *testing.T, c testConfig) {
				if len(c.Polls) != 1 || c.Polls[0].ClosesAt == nil || !c.Polls[0].ClosesAt.Equal(time.Date(2027, 2, 7, 23, 0, 0, 0, time.UTC)) {
					t.Fatalf("polls = %+v", c.Polls)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			fs.String("listen", c.Listen, "")
			err := Load(&c, fs, tt.args, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"missing file", map[string]string{"SURGE_CONFIG": "/nonexistent/surge.yaml"}},
		{"missing secret file", map[string]string{"SURGE_REDIS_PASSWORD_FILE": "/nonexistent/pw"}},
		{"bad JSON", map[string]string{"SURGE_POLLS": `[{"id":`}},
		{"bad duration", map[string]string{"SURGE_TIMEOUT": "soon"}},
		{"bad time", map[string]string{"SURGE_POLLS": `[{"id":"tea","options":["yes","no"],"closes_at":"tomorrow"}]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			if err := Load(&c, fs, nil, func(k string) string { return tt.env[k] }); err == nil {
				t.Fatal("Load succeeded")
			}
		})
	}
}
