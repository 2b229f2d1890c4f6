-- Colony fold marks (issue 12): per partition of mission.events, the first offset of the
-- oldest mission still open at the colony's stored offset (projector_offsets, as
-- colony:<group>), written in the same transaction. A restarted colony folds from here,
-- not from the partition's beginning. Written and read by the colony only.
CREATE TABLE colony_fold_marks (
    consumer   text    NOT NULL,
    topic      text    NOT NULL,
    partition  integer NOT NULL,
    fold_from  bigint  NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);
