package bfd

import (
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPacketRoundTrip(t *testing.T) {
	p := Packet{Diag: DiagTimeExpired, State: Up, Poll: true, DetectMult: 3, MyDiscr: 0x01020304, YourDiscr: 0x0a0b0c0d,
		DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond}
	b, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Version 1 and diag 1; Up (3<<6) and P; mult 3; length 24; then the
	// discriminators and 100000, 300000, 0 microseconds.
	if got, want := hex.EncodeToString(b), "21e0031801020304"+"0a0b0c0d"+"000186a0"+"000493e0"+"00000000"; got != want {
		t.Errorf("encoded %s, want %s", got, want)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Error(diff)
	}
}

func TestParseRefuses(t *testing.T) {
	good := Packet{State: Up, DetectMult: 3, MyDiscr: 1, YourDiscr: 2, DesiredMinTx: time.Second, RequiredMinRx: time.Second}
	enc := func(f func(b []byte)) []byte {
		b, _ := good.Append(nil)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", enc(func([]byte) {})[:23], ErrShort},
		{"length field above the datagram", enc(func(b []byte) { b[3] = 30 }), ErrShort},
		{"length field below 24", enc(func(b []byte) { b[3] = 20 }), ErrShort},
		{"version 0", enc(func(b []byte) { b[0] &^= 0xe0 }), ErrVersion},
		{"authentication", enc(func(b []byte) { b[1] |= 0x04 }), ErrAuth},
		{"detect multiplier 0", enc(func(b []byte) { b[2] = 0 }), ErrDetectMult},
		{"multipoint", enc(func(b []byte) { b[1] |= 0x01 }), ErrMultipoint},
		{"my discriminator 0", enc(func(b []byte) { copy(b[4:8], []byte{0, 0, 0, 0}) }), ErrMyDiscr},
		{"your discriminator 0 while Up", enc(func(b []byte) { copy(b[8:12], []byte{0, 0, 0, 0}) }), ErrYourDiscr},
		{"poll and final", enc(func(b []byte) { b[1] |= 0x30 }), ErrPollAndFinal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.b); !errors.Is(err, tc.want) {
				t.Errorf("Parse: %v, want %v", err, tc.want)
			}
		})
	}
	down := good
	down.State, down.YourDiscr = Down, 0
	b, _ := down.Append(nil)
	if _, err := Parse(append(b, 0, 0, 0)); err != nil {
		t.Errorf("a Down packet with your discriminator 0 and trailing bytes: %v", err)
	}
	if _, err := (Packet{DesiredMinTx: 2 * time.Hour}).Append(nil); err == nil {
		t.Error("an interval above the 32-bit microsecond field encoded")
	}
}

// FuzzParse: whatever Parse accepts encodes back to the same 24 bytes.
func FuzzParse(f *testing.F) {
	b, _ := Packet{State: Up, DetectMult: 3, MyDiscr: 1, YourDiscr: 2, DesiredMinTx: time.Second}.Append(nil)
	f.Add(b)
	f.Add(make([]byte, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		out, err := p.Append(nil)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		// The length field always says 24: only the first 24 bytes carry
		// the packet (a longer length would be authentication, refused).
		want := append([]byte(nil), b[:PacketLen]...)
		want[3] = PacketLen
		if diff := cmp.Diff(want, out); diff != "" {
			t.Fatal(diff)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
	})
}
