package metadata

import (
	"errors"
	"fmt"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
)

// checkArchive refuses, before anything is asked of the server or changed
// on it, an archive that a restore must not load: one that was not verified
// or did not verify, or one with a table RethinkDB would refuse to create or
// that must never be written (its system database). archive.Verify reports
// all of these already; this is the second look on the way in.
func checkArchive(rep *archive.Report) error {
	if !rep.FullRead || !rep.OK() {
		return errors.New("the archive was not verified, or did not verify: refusing to restore from it")
	}
	if len(rep.Tables) > archive.MaxTables {
		return fmt.Errorf("the archive lists %d tables, more than %d", len(rep.Tables), archive.MaxTables)
	}
	seen := map[rethink.TableRef]bool{}
	for _, st := range rep.Tables {
		t, known := rep.Table(st.Dir)
		if rep.Kind != archive.KindOfficial && !known {
			return fmt.Errorf("the archive holds table directory %q but does not define its table", st.Dir)
		}
		if err := archive.CheckTable(t.DB, t.Name); err != nil {
			return fmt.Errorf("refusing to restore: %w", err)
		}
		if err := archive.CheckDTRDatabase(t.DB, t.Name); err != nil {
			return fmt.Errorf("refusing to restore: %w", err)
		}
		ref := rethink.TableRef{DB: t.DB, Table: t.Name}
		if seen[ref] {
			return fmt.Errorf("the archive holds table %s twice", t.FullName())
		}
		seen[ref] = true
	}
	return nil
}

// checkPlan is checkArchive for Restore, with the plan it is given: nothing
// it names may be RethinkDB's system database or a name it would refuse.
func checkPlan(rep *archive.Report, plan *Plan) error {
	if err := checkArchive(rep); err != nil {
		return err
	}
	for _, db := range plan.CreateDBs {
		if !archive.ValidName(db) || db == archive.SystemDB || !archive.IsDTRDatabase(db) {
			return fmt.Errorf("refusing to restore: the plan creates database %q", db)
		}
	}
	for _, t := range plan.Tables {
		if err := archive.CheckTable(t.DB, t.Name); err != nil {
			return fmt.Errorf("refusing to restore: %w", err)
		}
	}
	return nil
}
