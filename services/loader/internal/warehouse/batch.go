package warehouse

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
)

// maxSequenceNumberDigits is the longest Kinesis sequence number: "0|([1-9]\d{0,128})".
const maxSequenceNumberDigits = 129

// isSequenceNumber reports whether s is a Kinesis sequence number in canonical form: decimal
// digits without leading zeros (Kinesis: "0|([1-9]\d{0,128})"). Canonical form makes text
// equality (the checkpoint compare-and-set) the same as numeric equality. It is checked for
// every row's position, so it is a loop over bytes rather than a regexp.
func isSequenceNumber(s string) bool {
	if s == "" || len(s) > maxSequenceNumberDigits || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// compareSequenceNumbers orders two canonical sequence numbers numerically: a longer one is
// larger, and equal lengths compare digit by digit. Never compare them as plain text
// ("9" > "10" as text).
func compareSequenceNumbers(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// compareVersions orders two versions of one fact row: by version, then by event_id
// byte-wise. The dialects must use the same order when they compare with a stored row.
func compareVersions(aVersion int64, aEventID string, bVersion int64, bEventID string) int {
	if c := cmp.Compare(aVersion, bVersion); c != 0 {
		return c
	}
	return cmp.Compare(aEventID, bEventID)
}

// maxViolations bounds the violations reported for one request: enough to fix a batch,
// small enough for a status detail.
const maxViolations = 50

type violations []FieldViolation

func (v *violations) add(field, format string, args ...any) {
	if len(*v) < maxViolations {
		*v = append(*v, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	return &ValidationError{Violations: v}
}

// batch is a validated LoadRequest in the shape the dialects write.
type batch struct {
	checkpoint CheckpointUpdate
	// rows are unique by key, sorted by key, each the greatest (version, event_id) of the
	// request's rows with that key.
	rows []FactRow
	// tombstones are the request's retractions, unique by key and sorted like rows; a key
	// is in rows or in tombstones, never both: only the greatest (version, event_id) of a
	// key's lines and retractions is kept.
	tombstones []Tombstone
	// received is the number of rows in the request, duplicates included.
	received int
	// letters are the request's rejections, then the rows refused before they reached the
	// database (tooLong of them), each still with its text as sent: Store.Load makes it
	// storable.
	letters []DeadLetter
	tooLong int
	// gap is the range the consumer found lost before this batch (trim_horizon), recorded
	// in the batch's transaction; nil when none.
	gap *Gap
}

// prepareBatch validates req and converts it. Every problem is reported at once, as a
// *ValidationError.
func prepareBatch(req *loadv1.LoadRequest) (*batch, error) {
	var v violations
	validateShard(&v, req.GetStream(), req.GetShardId())
	validateLeaseToken(&v, req.GetLeaseToken())
	validateCheckpointMove(&v, req)
	// Positions are checked against the checkpoint range only when the range is sound.
	checkRange := len(v) == 0

	b := &batch{
		checkpoint: CheckpointUpdate{
			Stream:         req.GetStream(),
			ShardID:        req.GetShardId(),
			Expected:       req.GetExpectedSequenceNumber(),
			SequenceNumber: req.GetSequenceNumber(),
			ShardEnd:       req.GetShardEnd(),
			ConsumerID:     req.GetConsumerId(),
			LeaseToken:     req.GetLeaseToken(),
		},
		received: len(req.GetRows()),
	}
	if g := req.GetGap(); g != nil {
		validateGap(&v, req)
		b.gap = &Gap{
			Stream: req.GetStream(), ShardID: req.GetShardId(), Reason: g.GetReason(),
			AfterSequenceNumber: g.GetAfterSequenceNumber(), BeforeSequenceNumber: g.GetBeforeSequenceNumber(),
			OldStreamIdentity: g.GetOldStreamIdentity(), StreamIdentity: g.GetStreamIdentity(),
			Detail: g.GetDetail(), ConsumerID: req.GetConsumerId(),
		}
	}
	rows := make([]FactRow, 0, len(req.GetRows()))
	var tombstones []Tombstone
	// The rows' timestamps live here, two per row, so that a row's SourceTime and
	// AcceptedAt cost no allocation of their own.
	times := make([]time.Time, 2*len(req.GetRows()))
	for i, row := range req.GetRows() {
		at := itemPath{list: "rows", index: i}
		if row == nil {
			v.add(at.field(""), "must be set")
			continue
		}
		validatePosition(&v, at, row.GetPosition(), req, checkRange, false)
		if row.GetRetraction() != nil {
			tomb, ok := convertTombstone(&v, at, row, (*[2]time.Time)(times[2*i:]))
			if !ok {
				continue
			}
			// The retraction statement has no savepoint to bisect under: every value it
			// writes is checked here, and a tombstone the table could not hold is
			// dead-lettered without being sent.
			if column, problem := tombstoneTextProblem(&tomb); column != "" {
				b.letters = append(b.letters, tombstoneLetter(&tomb, column, problem, b.checkpoint))
				b.tooLong++
				continue
			}
			tombstones = append(tombstones, tomb)
			continue
		}
		fact, ok := convertRow(&v, at, row, (*[2]time.Time)(times[2*i:]))
		if !ok {
			continue
		}
		// A text value longer than the warehouse stores would fail the whole transaction
		// (game_id is indexed: SQLSTATE 54000, not a data error), so the row is
		// dead-lettered without being sent. NUL and invalid UTF-8 are left to the database:
		// it refuses them with a data error, and bisection dead-letters the row.
		if column, problem := rowTextTooLong(&fact); column != "" {
			b.letters = append(b.letters, tooLongLetter(&fact, column, problem, b.checkpoint))
			b.tooLong++
			continue
		}
		rows = append(rows, fact)
	}
	for i, rejection := range req.GetRejections() {
		at := itemPath{list: "rejections", index: i}
		if rejection == nil {
			v.add(at.field(""), "must be set")
			continue
		}
		validatePosition(&v, at, rejection.GetPosition(), req, checkRange, true)
		if rejection.GetStage() == "" {
			v.add(at.field(".stage"), "must not be empty")
		}
		if rejection.GetReason() == "" {
			v.add(at.field(".reason"), "must not be empty")
		}
		b.letters = append(b.letters, DeadLetter{
			Stage:          rejection.GetStage(),
			Reason:         rejection.GetReason(),
			Detail:         rejection.GetDetail(),
			Field:          rejection.GetField(),
			EventID:        rejection.GetEventId(),
			EventVersion:   max(rejection.GetEventVersion(), 0),
			Stream:         rejection.GetPosition().GetStream(),
			ShardID:        rejection.GetPosition().GetShardId(),
			SequenceNumber: rejection.GetPosition().GetSequenceNumber(),
			Payload:        rejection.GetPayload(),
			Producer:       rejection.GetProducer(),
			// A rejection carries no player or game of its own: its payload says them.
			Subject: deadletter.DecodePayload(rejection.GetStage(), rejection.GetPayload()).Subject(),
		})
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	b.rows, b.tombstones = settleKeys(latestPerKey(rows), latestPerKey(tombstones))
	return b, nil
}

func validateShard(v *violations, stream, shardID string) {
	if stream == "" {
		v.add("stream", "must not be empty")
	} else if problem := textProblem(stream, MaxKeyText); problem != "" {
		v.add("stream", "%s", problem)
	}
	if shardID == "" {
		v.add("shard_id", "must not be empty")
	} else if problem := textProblem(shardID, MaxKeyText); problem != "" {
		v.add("shard_id", "%s", problem)
	}
}

// validateLeaseToken checks a fencing token: tokens start at 1, 0 being "never claimed".
func validateLeaseToken(v *violations, token int64) {
	if token <= 0 {
		v.add("lease_token", "must be positive, got %d: claim the shard (ClaimShard) and send the claimed token", token)
	}
}

// validateClaim checks a ClaimShard request.
func validateClaim(c Claim) error {
	var v violations
	validateShard(&v, c.Stream, c.ShardID)
	validateLeaseToken(&v, c.LeaseToken)
	if c.Owner == "" {
		v.add("owner", "must not be empty: a retried claim is recognized by its owner")
	}
	return v.err()
}

// validateCheckpointMove checks that the request moves the checkpoint forward, or only
// closes the shard at the position it already has.
func validateCheckpointMove(v *violations, req *loadv1.LoadRequest) {
	next, expected := req.GetSequenceNumber(), req.GetExpectedSequenceNumber()
	nextOK := false
	switch {
	case next == "":
		v.add("sequence_number", "must not be empty: it is the checkpoint the batch commits")
	case !isSequenceNumber(next):
		v.add("sequence_number", "%q is not a sequence number (decimal digits, no leading zeros)", next)
	default:
		nextOK = true
	}
	if expected != "" && !isSequenceNumber(expected) {
		v.add("expected_sequence_number", "%q is not a sequence number (decimal digits, no leading zeros)", expected)
		return
	}
	if !nextOK || expected == "" {
		return
	}
	switch c := compareSequenceNumbers(next, expected); {
	case c < 0:
		v.add("sequence_number", "%s is behind expected_sequence_number %s: a checkpoint never moves back", next, expected)
	case c == 0 && !req.GetShardEnd():
		v.add("sequence_number", "equals expected_sequence_number and shard_end is false: nothing to commit")
	}
}

// validateGap checks a gap reported with a batch: only a trim_horizon gap comes with a
// Load (a recreated stream is found by the claim), and it lies where the batch starts:
// after the checkpoint the batch moves from, before (or at) the batch's new checkpoint.
func validateGap(v *violations, req *loadv1.LoadRequest) {
	g := req.GetGap()
	if g.GetReason() != GapTrimHorizon {
		v.add("gap.reason", "%q: a Load reports only %q gaps", g.GetReason(), GapTrimHorizon)
	}
	if g.GetAfterSequenceNumber() == "" || g.GetAfterSequenceNumber() != req.GetExpectedSequenceNumber() {
		v.add("gap.after_sequence_number", "%q must be expected_sequence_number %q: the gap starts at the checkpoint the batch moves from",
			g.GetAfterSequenceNumber(), req.GetExpectedSequenceNumber())
	}
	before := g.GetBeforeSequenceNumber()
	if before == "" {
		return
	}
	if !isSequenceNumber(before) {
		v.add("gap.before_sequence_number", "%q is not a sequence number (decimal digits, no leading zeros)", before)
		return
	}
	if isSequenceNumber(g.GetAfterSequenceNumber()) && compareSequenceNumbers(before, g.GetAfterSequenceNumber()) <= 0 {
		v.add("gap.before_sequence_number", "%s is not after after_sequence_number %s", before, g.GetAfterSequenceNumber())
	}
	if isSequenceNumber(req.GetSequenceNumber()) && compareSequenceNumbers(before, req.GetSequenceNumber()) > 0 {
		v.add("gap.before_sequence_number", "%s is after the batch's sequence_number %s", before, req.GetSequenceNumber())
	}
}

// itemPath names an element of one of a request's lists ("rows[3]") in violations. The name
// is built only when a violation is reported: building it for every valid row was a
// quarter of prepareBatch's allocations.
type itemPath struct {
	list  string
	index int
}

// field returns the name of the element's field sub (".event_id"; "" for the element).
func (p itemPath) field(sub string) string {
	return p.list + "[" + strconv.Itoa(p.index) + "]" + sub
}

// validatePosition checks that a record comes from the request's shard and lies in the
// range the checkpoint moves over: after expected_sequence_number, up to sequence_number.
// at is the record's element of the request; the position is its field "position".
func validatePosition(v *violations, at itemPath, pos *streamv1.RecordPosition, req *loadv1.LoadRequest, checkRange, required bool) {
	field := func(sub string) string { return at.field(".position" + sub) }
	if pos == nil {
		if required {
			v.add(field(""), "must be set")
		}
		return
	}
	if pos.GetStream() != req.GetStream() {
		v.add(field(".stream"), "%q is not the request's stream %q", pos.GetStream(), req.GetStream())
	}
	if pos.GetShardId() != req.GetShardId() {
		v.add(field(".shard_id"), "%q is not the request's shard %q", pos.GetShardId(), req.GetShardId())
	}
	seq := pos.GetSequenceNumber()
	if !isSequenceNumber(seq) {
		v.add(field(".sequence_number"), "%q is not a sequence number (decimal digits, no leading zeros)", seq)
		return
	}
	if !checkRange {
		return
	}
	if expected := req.GetExpectedSequenceNumber(); expected != "" && compareSequenceNumbers(seq, expected) <= 0 {
		v.add(field(".sequence_number"), "%s is not after expected_sequence_number %s", seq, expected)
	}
	if compareSequenceNumbers(seq, req.GetSequenceNumber()) > 0 {
		v.add(field(".sequence_number"), "%s is after the batch's sequence_number %s", seq, req.GetSequenceNumber())
	}
}

// convertRow validates one row and converts it to a FactRow. The row's timestamps are
// stored in times; its optional text values point into row (kept as the FactRow's source
// anyway) rather than to copies of their own.
func convertRow(v *violations, at itemPath, row *warehousev1.BattingGameRow, times *[2]time.Time) (FactRow, bool) {
	before := len(*v)
	if row.GetEventId() == "" {
		v.add(at.field(".event_id"), "must not be empty")
	}
	player := row.GetPlayer()
	switch {
	case player == nil:
		v.add(at.field(".player"), "must be set")
	default:
		if player.GetMlbId() <= 0 {
			v.add(at.field(".player.mlb_id"), "must be positive, got %d", player.GetMlbId())
		}
		if player.GetName() == "" {
			v.add(at.field(".player.name"), "must not be empty")
		}
		if player.GetTeam() == "" {
			v.add(at.field(".player.team"), "must not be empty")
		}
	}
	if row.GetGameId() == "" {
		v.add(at.field(".game_id"), "must not be empty")
	}
	gameDate, err := time.Parse(time.DateOnly, row.GetGameDate())
	if err != nil {
		v.add(at.field(".game_date"), "%q is not a date YYYY-MM-DD", row.GetGameDate())
	}
	if n := row.GetGameNumber(); n < 0 || n > math.MaxInt16 {
		v.add(at.field(".game_number"), "must be between 0 and %d, got %d", math.MaxInt16, n)
	}
	if n := row.GetSeason(); n <= 0 || n > math.MaxInt16 {
		v.add(at.field(".season"), "must be between 1 and %d, got %d", math.MaxInt16, n)
	}
	if row.GetOpponent() == "" {
		v.add(at.field(".opponent"), "must not be empty")
	}
	for _, stat := range countingStats(row) {
		if stat.value < 0 {
			v.add(at.field(".")+stat.name, "must not be negative, got %d", stat.value)
		}
	}
	sourceTime := optionalTime(v, at, ".source_time", row.GetSourceTime(), &times[0])
	acceptedAt := optionalTime(v, at, ".accepted_at", row.GetAcceptedAt(), &times[1])
	if len(*v) > before {
		return FactRow{}, false
	}

	fact := FactRow{
		PlayerID:   player.GetMlbId(),
		PlayerName: player.GetName(),
		PlayerTeam: player.GetTeam(),

		GameID:     row.GetGameId(),
		GameDate:   gameDate,
		GameNumber: int16(row.GetGameNumber()),
		Season:     int16(row.GetSeason()),
		Opponent:   row.GetOpponent(),
		Home:       row.GetHome(),

		PlateAppearances:     row.GetPlateAppearances(),
		AtBats:               row.GetAtBats(),
		Runs:                 row.GetRuns(),
		Hits:                 row.GetHits(),
		Singles:              row.GetSingles(),
		Doubles:              row.GetDoubles(),
		Triples:              row.GetTriples(),
		HomeRuns:             row.GetHomeRuns(),
		RBI:                  row.GetRbi(),
		BaseOnBalls:          row.GetBaseOnBalls(),
		IntentionalWalks:     row.GetIntentionalWalks(),
		StrikeOuts:           row.GetStrikeOuts(),
		HitByPitch:           row.GetHitByPitch(),
		SacBunts:             row.GetSacBunts(),
		SacFlies:             row.GetSacFlies(),
		StolenBases:          row.GetStolenBases(),
		CaughtStealing:       row.GetCaughtStealing(),
		GroundIntoDoublePlay: row.GetGroundIntoDoublePlay(),
		TotalBases:           row.GetTotalBases(),
		ExtraBaseHits:        row.GetExtraBaseHits(),
		TimesOnBase:          row.GetTimesOnBase(),

		EventID:    row.GetEventId(),
		Version:    row.GetVersion(),
		SourceTime: sourceTime,
		AcceptedAt: acceptedAt,
		TraceID:    nonEmpty(&row.TraceId),
		Producer:   nonEmpty(&row.Producer),

		source: row,
	}
	if pos := row.GetPosition(); pos != nil {
		fact.SourceStream = nonEmpty(&pos.Stream)
		fact.SourceShardID = nonEmpty(&pos.ShardId)
		fact.SourceSequenceNumber = nonEmpty(&pos.SequenceNumber)
	}
	return fact, true
}

type namedStat struct {
	name  string
	value int32
}

// countingStats lists a row's counting stats under their proto field names. An array, not a
// slice: it stays on the stack, and it is built twice for every row.
func countingStats(row *warehousev1.BattingGameRow) [21]namedStat {
	return [21]namedStat{
		{"plate_appearances", row.GetPlateAppearances()},
		{"at_bats", row.GetAtBats()},
		{"runs", row.GetRuns()},
		{"hits", row.GetHits()},
		{"singles", row.GetSingles()},
		{"doubles", row.GetDoubles()},
		{"triples", row.GetTriples()},
		{"home_runs", row.GetHomeRuns()},
		{"rbi", row.GetRbi()},
		{"base_on_balls", row.GetBaseOnBalls()},
		{"intentional_walks", row.GetIntentionalWalks()},
		{"strike_outs", row.GetStrikeOuts()},
		{"hit_by_pitch", row.GetHitByPitch()},
		{"sac_bunts", row.GetSacBunts()},
		{"sac_flies", row.GetSacFlies()},
		{"stolen_bases", row.GetStolenBases()},
		{"caught_stealing", row.GetCaughtStealing()},
		{"ground_into_double_play", row.GetGroundIntoDoublePlay()},
		{"total_bases", row.GetTotalBases()},
		{"extra_base_hits", row.GetExtraBaseHits()},
		{"times_on_base", row.GetTimesOnBase()},
	}
}

// optionalTime returns ts as a time stored in dst, or nil when ts is unset or invalid (a
// violation of at's field sub).
func optionalTime(v *violations, at itemPath, sub string, ts *timestamppb.Timestamp, dst *time.Time) *time.Time {
	if ts == nil {
		return nil
	}
	if err := ts.CheckValid(); err != nil {
		v.add(at.field(sub), "invalid timestamp: %v", err)
		return nil
	}
	*dst = ts.AsTime()
	return dst
}

// nonEmpty returns s, or nil when *s is empty (stored as NULL).
func nonEmpty(s *string) *string {
	if *s == "" {
		return nil
	}
	return s
}

// versionedByKey is what latestPerKey needs of a fact row or a tombstone: its key and its
// (version, event_id).
type versionedByKey interface {
	Key() FactKey
	versionID() (int64, string)
}

func (r *FactRow) versionID() (int64, string)   { return r.Version, r.EventID }
func (t *Tombstone) versionID() (int64, string) { return t.Version, t.EventID }

// latestPerKey keeps, for each (player_id, game_id), the element with the greatest
// (version, event_id) (the first of equals), and sorts the result by key. Without it two
// rows with one key in a single INSERT ... ON CONFLICT DO UPDATE fail the statement
// (SQLSTATE 21000); the same holds for the tombstones. It reorders xs in place and returns
// the front of it.
//
// Indices are sorted, not the elements (a comparison of two FactRows by value copied and
// heap-allocated both), and the kept elements are then moved into place by swaps: no map
// and no second copy of the batch, which were most of its cost.
func latestPerKey[T any, P interface {
	*T
	versionedByKey
}](xs []T) []T {
	if len(xs) < 2 {
		return xs
	}
	// order: by key, then the greatest (version, event_id) first, then the earliest: the
	// first index of each key's run is the element kept.
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		a, b := P(&xs[i]), P(&xs[j])
		if c := compareKeys(a.Key(), b.Key()); c != 0 {
			return c
		}
		av, aid := a.versionID()
		bv, bid := b.versionID()
		if c := compareVersions(bv, bid, av, aid); c != 0 {
			return c
		}
		return cmp.Compare(i, j)
	})
	// dest[i] is where xs[i] goes: its rank among the kept elements, -1 when it lost.
	dest := make([]int, len(xs))
	kept := 0
	for k, i := range order {
		if k > 0 && compareKeys(P(&xs[i]).Key(), P(&xs[order[k-1]]).Key()) == 0 {
			dest[i] = -1
			continue
		}
		dest[i] = kept
		kept++
	}
	// Each swap puts one element where it goes for good; a loser swapped to the front is
	// swapped on until it lands past the kept ones.
	for i := range xs {
		for dest[i] >= 0 && dest[i] != i {
			j := dest[i]
			xs[i], xs[j] = xs[j], xs[i]
			dest[i], dest[j] = dest[j], dest[i]
		}
	}
	return xs[:kept]
}

func compareKeys(a, b FactKey) int {
	if c := cmp.Compare(a.PlayerID, b.PlayerID); c != 0 {
		return c
	}
	return cmp.Compare(a.GameID, b.GameID)
}

// latestPlayers returns one PlayerRow per player among the rows that were written, taken
// from the latest game (date, then game number, then version and event id), sorted by
// player id so concurrent loads lock dim_player rows in the same order.
func latestPlayers(rows []FactRow, writes []FactWrite) []PlayerRow {
	written := make(map[FactKey]bool, len(writes))
	for _, w := range writes {
		written[w.Key] = true
	}
	latest := make(map[int64]*FactRow)
	for i := range rows {
		row := &rows[i]
		if !written[row.Key()] {
			continue
		}
		if current, ok := latest[row.PlayerID]; !ok || laterGame(row, current) {
			latest[row.PlayerID] = row
		}
	}
	players := make([]PlayerRow, 0, len(latest))
	for _, row := range latest {
		players = append(players, PlayerRow{
			PlayerID:     row.PlayerID,
			Name:         row.PlayerName,
			Team:         row.PlayerTeam,
			LastGameDate: row.GameDate,
		})
	}
	slices.SortFunc(players, func(a, b PlayerRow) int { return cmp.Compare(a.PlayerID, b.PlayerID) })
	return players
}

func laterGame(a, b *FactRow) bool {
	if c := a.GameDate.Compare(b.GameDate); c != 0 {
		return c > 0
	}
	if a.GameNumber != b.GameNumber {
		return a.GameNumber > b.GameNumber
	}
	return compareVersions(a.Version, a.EventID, b.Version, b.EventID) > 0
}

// rowTextTooLong returns the first text column of row longer than MaxRowText, and why.
func rowTextTooLong(row *FactRow) (column, problem string) {
	return firstTextProblem(row, func(value string) string {
		if len(value) > MaxRowText {
			return textProblem(value, MaxRowText)
		}
		return ""
	})
}

// firstTextProblem returns the first text column of row (the fact's, and the player's name
// and team) in which problemOf finds a problem, and the problem.
func firstTextProblem(row *FactRow, problemOf func(value string) string) (column, problem string) {
	texts := [...]struct{ column, value string }{
		{"event_id", row.EventID}, {"game_id", row.GameID}, {"opponent", row.Opponent},
		{"player_name", row.PlayerName}, {"player_team", row.PlayerTeam},
		{"source_stream", deref(row.SourceStream)}, {"source_shard_id", deref(row.SourceShardID)},
		{"source_sequence_number", deref(row.SourceSequenceNumber)}, {"trace_id", deref(row.TraceID)},
		{"producer", deref(row.Producer)},
	}
	for _, t := range texts {
		if problem := problemOf(t.value); problem != "" {
			return t.column, problem
		}
	}
	return "", ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ReasonTextTooLong is the reason of a row dead-lettered by the loader because one of its
// text values is longer than MaxRowText.
const ReasonTextTooLong = "text_too_long"

// tooLongLetter is the dead letter of a row refused for an overlong text value: stage
// "load", like a row the database refused, with the row as sent in the payload.
func tooLongLetter(row *FactRow, column, problem string, cp CheckpointUpdate) DeadLetter {
	letter := rowLetter(row, cp)
	letter.Reason = ReasonTextTooLong
	letter.Field = column
	letter.Detail = column + " " + problem
	return letter
}

// rowLetter is the part of a refused row's dead letter that comes from the row: its event,
// its position (the batch's when it has none: the consumer always sends positions, a
// direct caller may not) and its payload, the row as sent in protojson. A row protojson
// cannot encode (invalid UTF-8, which gRPC never delivers) gets no payload rather than
// failing the batch.
func rowLetter(row *FactRow, cp CheckpointUpdate) DeadLetter {
	letter := DeadLetter{
		Stage:          StageLoad,
		EventID:        row.EventID,
		EventVersion:   max(row.Version, 0),
		Stream:         cp.Stream,
		ShardID:        cp.ShardID,
		SequenceNumber: cp.SequenceNumber,
		Producer:       deref(row.Producer),
		// What decoding the payload would say, also when the row has no payload.
		Subject: deadletter.Subject{PlayerID: row.PlayerID, HasPlayer: true, GameID: row.GameID},
	}
	if payload, err := protojson.Marshal(row.source); err == nil {
		letter.Payload = payload
	}
	if pos := row.source.GetPosition(); pos != nil {
		letter.Stream, letter.ShardID, letter.SequenceNumber = pos.GetStream(), pos.GetShardId(), pos.GetSequenceNumber()
	}
	return letter
}

// storable returns the letter with every text value made storable (storableText). Its
// event version is dropped (0, stored as NULL) when the event id had to change: the
// dead letter is then deduplicated by its position only, so two events whose ids differ
// only in unstorable bytes are never taken for one.
func (l DeadLetter) storable() DeadLetter {
	l.Stage, _ = storableText(l.Stage, MaxKeyText)
	l.Reason, _ = storableText(l.Reason, MaxKeyText)
	l.Field, _ = storableText(l.Field, MaxKeyText)
	l.Detail, _ = storableText(l.Detail, MaxDetailText)
	var changed bool
	if l.EventID, changed = storableText(l.EventID, MaxKeyText); changed {
		l.EventVersion = 0
	}
	l.Subject.GameID, _ = storableText(l.Subject.GameID, MaxKeyText)
	l.Producer, _ = storableText(l.Producer, MaxKeyText)
	return l
}

// convertTombstone validates a retraction row and converts it. It needs what identifies
// the line it removes and orders it (player, game, version, event id); the rest of a
// line's columns are not part of a tombstone and are not checked. Its timestamps are stored
// in times, as convertRow does.
func convertTombstone(v *violations, at itemPath, row *warehousev1.BattingGameRow, times *[2]time.Time) (Tombstone, bool) {
	before := len(*v)
	if row.GetEventId() == "" {
		v.add(at.field(".event_id"), "must not be empty")
	}
	if row.GetPlayer().GetMlbId() <= 0 {
		v.add(at.field(".player.mlb_id"), "must be positive, got %d", row.GetPlayer().GetMlbId())
	}
	if row.GetGameId() == "" {
		v.add(at.field(".game_id"), "must not be empty")
	}
	if row.GetVersion() <= 0 {
		v.add(at.field(".version"), "must be positive, got %d", row.GetVersion())
	}
	for _, stat := range countingStats(row) {
		if stat.value != 0 {
			v.add(at.field(".")+stat.name, "must be 0 on a retraction, got %d", stat.value)
		}
	}
	sourceTime := optionalTime(v, at, ".source_time", row.GetSourceTime(), &times[0])
	acceptedAt := optionalTime(v, at, ".accepted_at", row.GetAcceptedAt(), &times[1])
	if len(*v) > before {
		return Tombstone{}, false
	}
	t := Tombstone{
		PlayerID:   row.GetPlayer().GetMlbId(),
		GameID:     row.GetGameId(),
		Version:    row.GetVersion(),
		EventID:    row.GetEventId(),
		Producer:   nonEmpty(&row.Producer),
		Reason:     row.GetRetraction().GetReason(),
		SourceTime: sourceTime,
		AcceptedAt: acceptedAt,
		TraceID:    nonEmpty(&row.TraceId),
		source:     row,
	}
	if pos := row.GetPosition(); pos != nil {
		t.SourceStream = nonEmpty(&pos.Stream)
		t.SourceShardID = nonEmpty(&pos.ShardId)
		t.SourceSequenceNumber = nonEmpty(&pos.SequenceNumber)
	}
	return t, true
}

// tombstoneTextProblem returns the first text value of t the retraction table cannot hold
// as it is (NUL, invalid UTF-8, over MaxRowText bytes), and why.
func tombstoneTextProblem(t *Tombstone) (column, problem string) {
	texts := []struct{ column, value string }{
		{"event_id", t.EventID}, {"game_id", t.GameID}, {"reason", t.Reason}, {"producer", deref(t.Producer)},
		{"source_stream", deref(t.SourceStream)}, {"source_shard_id", deref(t.SourceShardID)},
		{"source_sequence_number", deref(t.SourceSequenceNumber)}, {"trace_id", deref(t.TraceID)},
	}
	for _, x := range texts {
		if problem := textProblem(x.value, MaxRowText); problem != "" {
			return x.column, problem
		}
	}
	return "", ""
}

// ReasonUnstorableText is the reason of a retraction dead-lettered by the loader because
// one of its text values holds NUL or invalid UTF-8, or is longer than MaxRowText: a
// line with such a value is refused by the database and isolated by bisection, a
// retraction is checked before it is sent.
const ReasonUnstorableText = "unstorable_text"

// tombstoneLetter is the dead letter of a retraction refused for a text value: stage
// "load", with the row as sent in the payload.
func tombstoneLetter(t *Tombstone, column, problem string, cp CheckpointUpdate) DeadLetter {
	fact := FactRow{PlayerID: t.PlayerID, GameID: t.GameID, EventID: t.EventID, Version: t.Version, Producer: t.Producer, source: t.source}
	letter := rowLetter(&fact, cp)
	letter.Reason = ReasonUnstorableText
	letter.Field = column
	letter.Detail = column + " " + problem
	return letter
}

// settleKeys keeps, for a key with both a line and a retraction in the batch, only the
// greater (version, event_id) of the two, as if they had been applied in that order: the
// smaller would change nothing after the greater. The loser counts as unchanged.
func settleKeys(rows []FactRow, tombstones []Tombstone) ([]FactRow, []Tombstone) {
	if len(rows) == 0 || len(tombstones) == 0 {
		return rows, tombstones
	}
	tombAt := make(map[FactKey]int, len(tombstones))
	for i := range tombstones {
		tombAt[tombstones[i].Key()] = i
	}
	dropTomb := make(map[int]bool)
	keptRows := rows[:0:0]
	for _, r := range rows {
		i, both := tombAt[r.Key()]
		if !both {
			keptRows = append(keptRows, r)
			continue
		}
		t := tombstones[i]
		if compareVersions(r.Version, r.EventID, t.Version, t.EventID) > 0 {
			keptRows = append(keptRows, r)
			dropTomb[i] = true
		}
	}
	keptTombs := tombstones[:0:0]
	for i, t := range tombstones {
		if !dropTomb[i] {
			keptTombs = append(keptTombs, t)
		}
	}
	return keptRows, keptTombs
}
