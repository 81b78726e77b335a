package dynamotest

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// action is one single-item action of a write request.
type action struct {
	table string
	key   item // nil if the request does not name a whole key: minidyn refuses it
	kind  string
	put   item // the new item of a put
	old   item
	// removes lists the top-level attributes an update's REMOVE clause
	// names, which minidyn leaves in place (see removeAttributes).
	removes []string
}

const (
	actPut    = "put"
	actUpdate = "update"
	actDelete = "delete"
	actCheck  = "check"
)

type itemTarget struct {
	TableName                string
	Key                      item
	Item                     item
	UpdateExpression         string
	ExpressionAttributeNames map[string]string
}

// updateClause finds the keywords that begin the clauses of an update
// expression.
var updateClause = regexp.MustCompile(`(?i)\b(SET|ADD|REMOVE|DELETE)\b`)

// removedAttributes returns the top-level attributes that the REMOVE
// clauses of an update expression name, with placeholders resolved.
// Nested paths (a.b, a[0]) are left out: minidyn removes those itself.
func removedAttributes(expr string, names map[string]string) []string {
	var out []string
	bounds := updateClause.FindAllStringSubmatchIndex(expr, -1)
	for i, b := range bounds {
		if !strings.EqualFold(expr[b[2]:b[3]], "REMOVE") {
			continue
		}
		end := len(expr)
		if i+1 < len(bounds) {
			end = bounds[i+1][0]
		}
		for _, path := range strings.Split(expr[b[1]:end], ",") {
			path = strings.TrimSpace(path)
			if path == "" || strings.ContainsAny(path, ".[") {
				continue
			}
			if name, ok := names[path]; ok {
				path = name
			}
			out = append(out, path)
		}
	}
	return out
}

// actions lists the single-item actions of a write request.
func (s *Server) actions(op string, body []byte) []action {
	var acts []action
	add := func(table, kind string, key, it item) {
		a := action{table: table, kind: kind, put: it}
		if kind == actPut {
			key, _ = project(it, s.keySchema(table))
		}
		a.key = key
		acts = append(acts, a)
	}
	switch op {
	case "PutItem", "UpdateItem", "DeleteItem":
		var in itemTarget
		if json.Unmarshal(body, &in) != nil {
			return nil
		}
		kind := map[string]string{"PutItem": actPut, "UpdateItem": actUpdate, "DeleteItem": actDelete}[op]
		add(in.TableName, kind, in.Key, in.Item)
		if kind == actUpdate {
			acts[len(acts)-1].removes = removedAttributes(in.UpdateExpression, in.ExpressionAttributeNames)
		}
	case "BatchWriteItem":
		var in struct {
			RequestItems map[string][]struct {
				PutRequest    *struct{ Item item }
				DeleteRequest *struct{ Key item }
			}
		}
		if json.Unmarshal(body, &in) != nil {
			return nil
		}
		for table, reqs := range in.RequestItems {
			for _, r := range reqs {
				switch {
				case r.PutRequest != nil:
					add(table, actPut, nil, r.PutRequest.Item)
				case r.DeleteRequest != nil:
					add(table, actDelete, r.DeleteRequest.Key, nil)
				}
			}
		}
	case "TransactWriteItems":
		var in struct {
			TransactItems []struct {
				ConditionCheck, Put, Update, Delete *itemTarget
			}
		}
		if json.Unmarshal(body, &in) != nil {
			return nil
		}
		for _, ti := range in.TransactItems {
			switch {
			case ti.Put != nil:
				add(ti.Put.TableName, actPut, nil, ti.Put.Item)
			case ti.Update != nil:
				add(ti.Update.TableName, actUpdate, ti.Update.Key, nil)
				acts[len(acts)-1].removes = removedAttributes(ti.Update.UpdateExpression, ti.Update.ExpressionAttributeNames)
			case ti.Delete != nil:
				add(ti.Delete.TableName, actDelete, ti.Delete.Key, nil)
			case ti.ConditionCheck != nil:
				add(ti.ConditionCheck.TableName, actCheck, ti.ConditionCheck.Key, nil)
			}
		}
	}
	return acts
}

// write applies a write request through minidyn, reading each of its
// items before and after it, all under the write lock, so that it can bill
// the request and record each change in the table's stream exactly.
func (s *Server) write(op string, body []byte) (response, Counts) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	acts := s.actions(op, body)
	for i := range acts {
		if acts[i].key == nil {
			continue
		}
		old, err := s.getItem(acts[i].table, acts[i].key)
		if err != nil {
			acts[i].key = nil // minidyn refuses the request
			continue
		}
		acts[i].old = old
	}
	res := s.call(op, body)
	factor := int64(1)
	if op == "TransactWriteItems" {
		factor = 2
	}
	var c Counts
	switch res.errorType() {
	case "":
		at := s.now()
		for _, a := range acts {
			if a.key == nil {
				continue
			}
			if a.kind == actCheck {
				c.WriteUnits += factor * writeUnits(itemSize(a.old))
				continue
			}
			c.ItemsWritten++
			if len(a.removes) > 0 {
				s.removeAttributes(a.table, a.key, a.removes)
			}
			cur, err := s.getItem(a.table, a.key)
			if err != nil {
				continue
			}
			c.WriteUnits += factor * writeUnits(max(itemSize(a.old), itemSize(cur)))
			if sameItem(a.old, cur) {
				continue
			}
			c.Changes++
			s.record(a.table, a.key, a.old, cur, at)
		}
	case "ConditionalCheckFailedException", "TransactionCanceledException":
		for _, a := range acts {
			if a.key == nil {
				continue
			}
			if a.kind != actCheck {
				c.ItemsWritten++
			}
			c.WriteUnits += factor * writeUnits(max(itemSize(a.old), itemSize(a.put)))
		}
		if op != "TransactWriteItems" {
			// A single put's condition fails on the item as it is.
			c.WriteUnits = 0
			for _, a := range acts {
				if a.key != nil {
					c.WriteUnits += writeUnits(itemSize(a.old))
				}
			}
		}
	}
	return res, c
}

// removeAttributes finishes an update that minidyn applied but whose
// REMOVE of a top-level attribute it ignored (minidyn v0.8.2 deletes the
// name from its evaluation environment, never from the item): it writes
// the item back without them. The caller holds the write lock, so no other
// write sees the item in between.
func (s *Server) removeAttributes(table string, key item, names []string) {
	cur, err := s.getItem(table, key)
	if err != nil || len(cur) == 0 {
		return
	}
	changed := false
	for _, n := range names {
		if _, ok := cur[n]; ok {
			delete(cur, n)
			changed = true
		}
	}
	if !changed {
		return
	}
	b, err := json.Marshal(map[string]any{"TableName": table, "Item": cur})
	if err != nil {
		return
	}
	s.call("PutItem", b)
}

// record appends the change of one item to its table's stream, if the
// table has an enabled one.
func (s *Server) record(tableName string, key, old, cur item, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[tableName]
	if t == nil || t.stream == nil || !t.stream.enabled {
		return
	}
	// The key as the item holds it, in the types the table declares.
	if k, ok := project(cur, t.stream.keySchema); ok {
		key = k
	} else if k, ok := project(old, t.stream.keySchema); ok {
		key = k
	}
	t.stream.append(key, old, cur, at)
}

// read hands a read request to minidyn and bills it from what it returns.
func (s *Server) read(op string, body []byte) (response, Counts) {
	res := s.call(op, body)
	var c Counts
	if res.status != http.StatusOK {
		return res, c
	}
	factor := func(consistent *bool) float64 {
		if consistent != nil && *consistent {
			return 1
		}
		return 0.5
	}
	switch op {
	case "GetItem":
		var in struct {
			TableName            string
			Key                  item
			ConsistentRead       *bool
			ProjectionExpression string
			AttributesToGet      []string
		}
		var out struct{ Item item }
		if json.Unmarshal(body, &in) != nil || json.Unmarshal(res.body, &out) != nil {
			return res, c
		}
		it := out.Item
		if it != nil && (in.ProjectionExpression != "" || len(in.AttributesToGet) > 0) {
			if full, err := s.getItem(in.TableName, in.Key); err == nil {
				it = full
			}
		}
		if it != nil {
			c.ItemsRead = 1
		}
		c.ReadUnits = readUnits(itemSize(it)) * factor(in.ConsistentRead)
	case "Query", "Scan":
		var in struct{ ConsistentRead *bool }
		var out struct{ Items []item }
		if json.Unmarshal(body, &in) != nil || json.Unmarshal(res.body, &out) != nil {
			return res, c
		}
		size := 0
		for _, it := range out.Items {
			size += itemSize(it)
		}
		c.ItemsRead = int64(len(out.Items))
		c.ReadUnits = readUnits(size) * factor(in.ConsistentRead)
	case "BatchGetItem":
		var in struct {
			RequestItems map[string]struct {
				Keys           []item
				ConsistentRead *bool
			}
		}
		var out struct{ Responses map[string][]item }
		if json.Unmarshal(body, &in) != nil || json.Unmarshal(res.body, &out) != nil {
			return res, c
		}
		for table, req := range in.RequestItems {
			got := out.Responses[table]
			for _, it := range got {
				c.ReadUnits += readUnits(itemSize(it)) * factor(req.ConsistentRead)
			}
			c.ItemsRead += int64(len(got))
			c.ReadUnits += float64(max(0, len(req.Keys)-len(got))) * factor(req.ConsistentRead)
		}
	case "TransactGetItems":
		var out struct{ Responses []struct{ Item item } }
		if json.Unmarshal(res.body, &out) != nil {
			return res, c
		}
		for _, r := range out.Responses {
			if r.Item != nil {
				c.ItemsRead++
			}
			c.ReadUnits += 2 * readUnits(itemSize(r.Item))
		}
	}
	return res, c
}
