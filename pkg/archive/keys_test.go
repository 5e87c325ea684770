package archive

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
	"testing/iotest"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// docker/dtr backup's archives are held to DTR's primary keys: a document
// without its table's key, or two with one key, would not restore as they
// are. Keys compare as RethinkDB compares them.
func TestOfficialArchivesHaveTheirTablesKeys(t *testing.T) {
	ok := verifyBytes(t, officialTar(t, [2]string{"tuf_files/0", `{"gun_role_version":"g_root_1","data":"e30="}`},
		[2]string{"private_keys/0", `{"key_id":"k1"}`}, [2]string{"tags/0", `{"id":1}`}, [2]string{"tags/1", `{"id":"1"}`}))
	assert.Assert(t, ok.OK(), problems(ok))

	for _, c := range []struct {
		docs [][2]string
		want string
	}{
		{[][2]string{{"tuf_files/0", `{"id":"g_root_1"}`}}, `tuf_files/0: document 0 of table notaryserver.tuf_files has no primary key field "gun_role_version"`},
		{[][2]string{{"tags/0", `{"id":"a"}`}, {"tags/1", `{"id":"b"}`}, {"tags/2", `{"id":"\u0061"}`}}, "tags/2: document 2 of table dtr2.tags has the primary key of document 0"},
		{[][2]string{{"tags/0", `{"id":1}`}, {"tags/1", `{"id":1.0e0}`}}, "has the primary key of document 0"},
		{[][2]string{{"tags/0", `{"id":{"$reql_type$":"TIME","epoch_time":5,"timezone":"+00:00"}}`},
			{"tags/1", `{"id":{"$reql_type$":"TIME","epoch_time":5,"timezone":"+02:00"}}`}}, "has the primary key of document 0"},
		{[][2]string{{"tags/0", `{"id":"a"}`}, {"events/0", `{"id":"e"}`}, {"tags/1", `{"id":"b"}`}}, "the documents of table dtr2.tags are not together"},
	} {
		rep := verifyBytes(t, officialTar(t, c.docs...))
		assert.Equal(t, len(rep.Problems), 1, problems(rep))
		assert.Assert(t, is.Contains(rep.Problems[0].String(), c.want))
	}
}

// A repeated hash is only a candidate: the second pass compares the keys
// themselves, and reports only keys that are equal. Here every key has
// the same hash.
func TestEqualHashesAreComparedExactly(t *testing.T) {
	var docs [][2]string
	for i := range 50 {
		docs = append(docs, [2]string{"tags/" + strconv.Itoa(i), `{"id":"key-` + strconv.Itoa(i%40) + `"}`})
	}
	f := tempFile(t, officialTar(t, docs...))
	l := scan(f, false)
	rep, m, err := openLayout(f, l)
	assert.NilError(t, err)
	assert.Assert(t, m == nil)
	rep.fromOfficial(l)
	c := newChecker(rep, l)
	c.keys.hash = func([]byte) uint64 { return 42 }
	_, err = f.Seek(0, io.SeekStart)
	assert.NilError(t, err)
	bs, err := newBufSeeker(f)
	assert.NilError(t, err)
	c.run(newTarStream(bs, false))
	assert.NilError(t, c.recheck(f))
	assert.Equal(t, len(rep.Problems), 10, problems(rep))
	assert.Assert(t, is.Contains(rep.Problems[0].String(), "tags/40: document 40 of table dtr2.tags has the primary key of document 0"))
	assert.Assert(t, is.Contains(rep.Problems[9].String(), "tags/49: document 49 of table dtr2.tags has the primary key of document 9"))
}

// A stream compares equal hashes in a second pass of its own, a fresh
// read, and finds what the file's check finds. Where that pass fails (an
// encrypted backup changed since the first), verify fails.
func TestEqualHashesAreComparedExactlyInAStream(t *testing.T) {
	var docs [][2]string
	for i := range 50 {
		docs = append(docs, [2]string{"tags/" + strconv.Itoa(i), `{"id":"key-` + strconv.Itoa(i%40) + `"}`})
	}
	data := officialTar(t, docs...)
	collide := func(k *keySet) { k.hash = func([]byte) uint64 { return 42 } }
	opens := 0
	rep, err := verifyStream(func() (io.ReadCloser, error) {
		opens++
		return io.NopCloser(bytes.NewReader(data)), nil
	}, collide)
	assert.NilError(t, err)
	assert.Equal(t, opens, 2)
	assert.Equal(t, len(rep.Problems), 10, problems(rep))
	assert.Assert(t, is.Contains(rep.Problems[0].String(), "tags/40: document 40 of table dtr2.tags has the primary key of document 0"))
	file, err := Verify(tempFile(t, data))
	assert.NilError(t, err)
	assert.DeepEqual(t, rep.Problems, file.Problems)

	changed := errors.New("the message was modified")
	opens = 0
	rep, err = verifyStream(func() (io.ReadCloser, error) {
		opens++
		if opens == 2 {
			return io.NopCloser(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(changed))), nil
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}, collide)
	assert.Equal(t, err, changed)
	assert.Assert(t, rep == nil)
}
