// Package configload decodes a viper configuration into a binary's config
// struct and lists every decoding problem by key, so that rampartd and
// rampart-agent report them together with their validation problems.
package configload

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Decode fills out from v, refusing unknown keys. It returns one problem per
// key that could not be decoded ("login.binding_ttl: ...") and those keys;
// the other fields are decoded all the same.
func Decode(v *viper.Viper, out any) (problems, keys []string) {
	err := v.UnmarshalExact(out)
	if err == nil {
		return nil, nil
	}
	var walk func(error)
	walk = func(e error) {
		if de, ok := e.(*mapstructure.DecodeError); ok {
			key, msg := de.Name(), de.Unwrap().Error()
			if rest, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
				for _, k := range strings.Split(rest, ", ") {
					problems = append(problems, fmt.Sprintf("%s: unknown key", joinKey(key, k)))
				}
				return
			}
			problems = append(problems, fmt.Sprintf("%s: %v is not valid here: %s", key, quoted(v.Get(key)), msg))
			keys = append(keys, key)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		default:
			problems = append(problems, e.Error())
		}
	}
	walk(err)
	slices.Sort(problems)
	return problems, keys
}

// Keep drops the validation problems about keys that failed to decode:
// their zero values would only add a second, misleading message.
func Keep(validation []string, failed []string) []string {
	return slices.DeleteFunc(validation, func(p string) bool {
		for _, k := range failed {
			if strings.HasPrefix(p, k+" ") || strings.HasPrefix(p, k+":") {
				return true
			}
		}
		return false
	})
}

// Error is the one error listing every problem, or nil.
func Error(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return errors.New("invalid configuration:\n  - " + strings.Join(problems, "\n  - "))
}

func joinKey(parent, k string) string {
	if parent == "" {
		return k
	}
	return parent + "." + k
}

func quoted(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%v", v)
}
