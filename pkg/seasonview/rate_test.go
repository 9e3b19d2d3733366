package seasonview

import (
	"math/big"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestRateFromNumeric(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   pgtype.Numeric
		want Rate
	}{
		{"NULL", pgtype.Numeric{}, Rate{}},
		{"scale 3", pgtype.Numeric{Int: big.NewInt(312), Exp: -3, Valid: true}, Rate{312, true}},
		{"over one", pgtype.Numeric{Int: big.NewInt(1037), Exp: -3, Valid: true}, Rate{1037, true}},
		{"trailing zeros dropped", pgtype.Numeric{Int: big.NewInt(3), Exp: -1, Valid: true}, Rate{300, true}},
		{"extra zeros kept", pgtype.Numeric{Int: big.NewInt(31200), Exp: -5, Valid: true}, Rate{312, true}},
		{"whole number", pgtype.Numeric{Int: big.NewInt(2), Exp: 0, Valid: true}, Rate{2000, true}},
		{"zero", pgtype.Numeric{Int: big.NewInt(0), Exp: 0, Valid: true}, Rate{0, true}},
	} {
		got, err := rateFromNumeric(tc.in)
		if err != nil {
			t.Errorf("%s: rateFromNumeric: %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: rateFromNumeric = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestRateFromNumericRefusesWhatIsNotARate(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   pgtype.Numeric
	}{
		{"four decimals", pgtype.Numeric{Int: big.NewInt(3125), Exp: -4, Valid: true}},
		{"NaN", pgtype.Numeric{NaN: true, Valid: true}},
		{"infinity", pgtype.Numeric{InfinityModifier: pgtype.Infinity, Valid: true}},
		{"huge", pgtype.Numeric{Int: big.NewInt(1), Exp: 30, Valid: true}},
	} {
		if got, err := rateFromNumeric(tc.in); err == nil {
			t.Errorf("%s: rateFromNumeric = %+v, want an error", tc.name, got)
		}
	}
}
