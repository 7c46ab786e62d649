//! The README's table of supported operators is the one the code generates.
#![allow(clippy::unwrap_used)]

use pillar_infer::operators::{TABLE_BEGIN, TABLE_END, operator_table};

#[test]
fn the_readme_lists_the_operators_with_the_costs_the_code_computes() {
    let want = operator_table().unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let got = readme
        .find(TABLE_BEGIN)
        .and_then(|start| {
            let end = readme[start..].find(TABLE_END)? + start + TABLE_END.len();
            Some(&readme[start..end])
        })
        .unwrap_or("(no table between the markers)");
    assert!(
        got == want,
        "README.md's operator table differs from the code's; replace it with:\n\n{want}\n"
    );
}

#[test]
fn the_table_holds_the_costs_of_the_protocols() {
    let rows = pillar_infer::operators::operator_rows().unwrap();
    let find = |onnx: &str| rows.iter().find(|r| r.onnx.starts_with(onnx)).unwrap();
    // One ReLU: 8 rounds, 14 words and a bit per element.
    assert_eq!(find("`Relu`").rounds, 8);
    assert_eq!(find("`Relu`").bytes, "112.125 per element");
    // Both bounds of a clip in one batch: one ReLU's rounds, twice its bytes.
    assert_eq!(find("`Clip` with both").rounds, 8);
    assert_eq!(find("`Clip` with both").bytes, "224.25 per element");
    assert_eq!(find("`Clip` with one").bytes, "112.125 per element");
    // 3x3: four tournament levels of 4, 2, 1 and 1 ReLUs per window.
    assert_eq!(find("`MaxPool` 3x3").rounds, 32);
    assert_eq!(find("`MaxPool` 3x3").bytes, "897 per output");
    assert_eq!(find("`Softmax`").rounds, 0);
    assert_eq!(find("`Conv`").bytes, "8 per input element");
}
