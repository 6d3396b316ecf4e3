"""YFCC with the VGG16 frame features of the SSVH papers: nine training files, two database files."""

from ssvh_bench import FileDataset, FileLayout, FileSplit, register_dataset


@register_dataset("yfcc", description="YFCC: 409,788 training / 101,256 database / 1,000 query videos, "
                                      "25 x 4096 VGG16, 80 classes")
class YFCC(FileDataset):
    """YFCC: training files 1..9 and database files 1..2 are each read as one split, concatenated in order."""

    layout = FileLayout(
        name="yfcc",
        train=FileSplit(tuple(f"yfcc_train_feats_{part}.h5" for part in range(1, 10))),
        database=FileSplit(("yfcc_test_feats_1.h5", "yfcc_test_feats_2.h5"),
                           ("yfcc_test_labels_1.mat", "yfcc_test_labels_2.mat"), "labels"),
        query=FileSplit(("query1000_feats.h5",), ("query1000_labels.mat",), "labels"),
        disk_gb=209.7,  # videos x frames x dim x 4 bytes over all splits
    )
