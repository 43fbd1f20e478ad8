// Package config loads a service's typed configuration with viper, once, in
// main. Sources, lowest precedence first:
//
//  1. the defaults: the values already in the struct;
//  2. a YAML/JSON/TOML file named by --config or SURGE_CONFIG;
//  3. the environment: key "redis.addr" is SURGE_REDIS_ADDR, and
//     SURGE_REDIS_ADDR_FILE names a file holding the value (for secrets);
//  4. command-line flags named like the keys (--redis.addr).
//
// Lists of structures (polls, shards) are given in the environment as JSON;
// lists of strings as JSON or comma-separated.
package config

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix starts every environment variable.
const EnvPrefix = "SURGE_"

// Load fills dst, a pointer to a struct with mapstructure tags, from the
// sources above. fs holds the flags; it is parsed from args here and gets a
// --config flag.
func Load(dst any, fs *pflag.FlagSet, args []string, getenv func(string) string) error {
	var file string
	fs.StringVar(&file, "config", "", "configuration file (YAML, JSON or TOML)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if file == "" {
		file = getenv(EnvPrefix + "CONFIG")
	}

	v := viper.New()
	defaults := map[string]any{}
	if err := mapstructure.Decode(dst, &defaults); err != nil {
		return fmt.Errorf("read defaults: %w", err)
	}
	kinds := map[string]reflect.Kind{}
	flatten("", defaults, func(key string, val any) {
		v.SetDefault(key, val)
		kinds[key] = reflect.ValueOf(val).Kind()
	})

	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("read config %s: %w", file, err)
		}
	}

	env := map[string]any{}
	for key, kind := range kinds {
		name := EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
		raw, ok := "", false
		if path := getenv(name + "_FILE"); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read %s_FILE: %w", name, err)
			}
			raw, ok = strings.TrimRight(string(b), "\r\n"), true
		} else if val := getenv(name); val != "" {
			raw, ok = val, true
		}
		if !ok {
			continue
		}
		val, err := parseEnv(kind, raw)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		setNested(env, key, val)
	}
	if len(env) > 0 {
		if err := v.MergeConfigMap(env); err != nil {
			return fmt.Errorf("merge environment: %w", err)
		}
	}

	if err := v.BindPFlags(fs); err != nil {
		return fmt.Errorf("bind flags: %w", err)
	}
	if err := v.Unmarshal(dst, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToTimeHookFunc(time.RFC3339), // poll windows
		mapstructure.StringToSliceHookFunc(","),
	))); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	return nil
}

func parseEnv(kind reflect.Kind, raw string) (any, error) {
	switch kind {
	case reflect.Slice, reflect.Map, reflect.Struct:
		if t := strings.TrimSpace(raw); strings.HasPrefix(t, "[") || strings.HasPrefix(t, "{") {
			var val any
			if err := json.Unmarshal([]byte(t), &val); err != nil {
				return nil, fmt.Errorf("parse JSON: %w", err)
			}
			return val, nil
		}
		return strings.Split(raw, ","), nil
	}
	return raw, nil
}

// flatten calls f for every leaf of a nested map, with a dotted key.
func flatten(prefix string, m map[string]any, f func(string, any)) {
	for k, val := range m {
		key := strings.ToLower(k)
		if prefix != "" {
			key = prefix + "." + key
		}
		if sub, ok := val.(map[string]any); ok && len(sub) > 0 {
			flatten(key, sub, f)
			continue
		}
		f(key, val)
	}
}

func setNested(m map[string]any, key string, val any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = val
}
