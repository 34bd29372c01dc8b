//! Geo queries on `GeoPoint` and `Polygon` fields: the conditions, the one implementation of
//! their math (used by the in-memory matcher and registered on SQLite connections, so both
//! evaluators compute the same thing), and the parsing of Parse's geo operators.
//!
//! Distances are on a sphere (haversine), in radians; Parse's miles and kilometres convert
//! with its Earth radii. Polygons are read in the plane of (longitude, latitude), as Parse
//! Server's PostgreSQL adapter reads them, with the even-odd rule.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Earth radii Parse uses to convert `$maxDistanceInMiles` / `InKilometers` to radians.
pub const EARTH_RADIUS_MILES: f64 = 3958.8;
pub const EARTH_RADIUS_KILOMETERS: f64 = 6371.0;

/// A point on the sphere, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

/// A geo condition.
#[derive(Debug, Clone, PartialEq)]
pub enum GeoCond {
    /// `$nearSphere` with `$maxDistance` (radians): within that distance of the point; the
    /// results are ordered by distance unless the query orders them otherwise.
    Near {
        point: GeoPoint,
        max_distance: Option<f64>,
    },
    /// `$within: {$box: [southWest, northEast]}`: latitude and longitude between the corners.
    WithinBox {
        south_west: GeoPoint,
        north_east: GeoPoint,
    },
    /// `$geoWithin: {$polygon: […]}`: inside the polygon.
    WithinPolygon(Vec<GeoPoint>),
    /// `$geoWithin: {$centerSphere: [center, radius]}`: within `radius` radians of `center`.
    WithinSphere { center: GeoPoint, radius: f64 },
    /// `$geoIntersects: {$point: …}` on a Polygon field: the polygon contains the point.
    PolygonContains(GeoPoint),
}

impl GeoCond {
    /// Whether the condition applies to Polygon fields (else to GeoPoint fields).
    pub fn on_polygon(&self) -> bool {
        matches!(self, GeoCond::PolygonContains(_))
    }

    /// Whether a stored value (a GeoPoint or Polygon in its Parse JSON) satisfies it.
    pub fn matches(&self, value: &Value) -> bool {
        match self {
            GeoCond::PolygonContains(point) => {
                polygon_of(value).is_some_and(|polygon| point_in_polygon(*point, &polygon))
            }
            _ => {
                let Some(here) = geo_point_of(value) else {
                    return false;
                };
                match self {
                    GeoCond::Near {
                        point,
                        max_distance,
                    } => max_distance.is_none_or(|max| distance(*point, here) <= max),
                    GeoCond::WithinBox {
                        south_west,
                        north_east,
                    } => in_box(here, *south_west, *north_east),
                    GeoCond::WithinPolygon(polygon) => point_in_polygon(here, polygon),
                    GeoCond::WithinSphere { center, radius } => distance(*center, here) <= *radius,
                    GeoCond::PolygonContains(_) => false,
                }
            }
        }
    }
}

/// The great-circle distance between two points, in radians (haversine).
pub fn distance(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let d_lat = lat2 - lat1;
    let d_lon = (b.longitude - a.longitude).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
    2.0 * h.sqrt().min(1.0).asin()
}

/// Between the corners (corners in either order), as PostgreSQL's `point <@ box`.
pub fn in_box(point: GeoPoint, a: GeoPoint, b: GeoPoint) -> bool {
    let (lat_low, lat_high) = (a.latitude.min(b.latitude), a.latitude.max(b.latitude));
    let (lon_low, lon_high) = (a.longitude.min(b.longitude), a.longitude.max(b.longitude));
    (lat_low..=lat_high).contains(&point.latitude)
        && (lon_low..=lon_high).contains(&point.longitude)
}

/// Even-odd rule in the (longitude, latitude) plane; a point on an edge or a vertex is
/// inside, as with PostgreSQL's `point <@ polygon` (Parse Server's adapter).
pub fn point_in_polygon(point: GeoPoint, polygon: &[GeoPoint]) -> bool {
    let (x, y) = (point.longitude, point.latitude);
    let on_edge = |a: &GeoPoint, b: &GeoPoint| {
        let cross = (b.longitude - a.longitude) * (y - a.latitude)
            - (b.latitude - a.latitude) * (x - a.longitude);
        cross == 0.0
            && x >= a.longitude.min(b.longitude)
            && x <= a.longitude.max(b.longitude)
            && y >= a.latitude.min(b.latitude)
            && y <= a.latitude.max(b.latitude)
    };
    if polygon
        .iter()
        .zip(polygon.iter().cycle().skip(1))
        .any(|(a, b)| on_edge(a, b))
    {
        return true;
    }
    let mut inside = false;
    let mut previous = match polygon.last() {
        Some(last) => *last,
        None => return false,
    };
    for vertex in polygon {
        let (xi, yi) = (vertex.longitude, vertex.latitude);
        let (xj, yj) = (previous.longitude, previous.latitude);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        previous = *vertex;
    }
    inside
}

/// `{"__type":"GeoPoint","latitude":…,"longitude":…}`.
pub fn geo_point_of(value: &Value) -> Option<GeoPoint> {
    let map = value.as_object()?;
    if map.get("__type").and_then(Value::as_str) != Some("GeoPoint") {
        return None;
    }
    Some(GeoPoint {
        latitude: map.get("latitude")?.as_f64()?,
        longitude: map.get("longitude")?.as_f64()?,
    })
}

/// `{"__type":"Polygon","coordinates":[[lat, lon], …]}` (Parse's REST form).
pub fn polygon_of(value: &Value) -> Option<Vec<GeoPoint>> {
    let map = value.as_object()?;
    if map.get("__type").and_then(Value::as_str) != Some("Polygon") {
        return None;
    }
    map.get("coordinates")?
        .as_array()?
        .iter()
        .map(|pair| match pair.as_array()?.as_slice() {
            [latitude, longitude] => Some(GeoPoint {
                latitude: latitude.as_f64()?,
                longitude: longitude.as_f64()?,
            }),
            _ => None,
        })
        .collect()
}

fn bad(message: impl Into<String>) -> Error {
    Error::invalid_json(message.into())
}

/// A GeoPoint operand, checked as Parse does (latitude in ±90, longitude in ±180).
fn point_operand(value: &Value, what: &str) -> Result<GeoPoint> {
    let point =
        geo_point_of(value).ok_or_else(|| bad(format!("bad {what}: should be a GeoPoint")))?;
    check_point(point)
}

fn check_point(point: GeoPoint) -> Result<GeoPoint> {
    if !(-90.0..=90.0).contains(&point.latitude) {
        return Err(bad("GeoPoint latitude out of bounds"));
    }
    if !(-180.0..=180.0).contains(&point.longitude) {
        return Err(bad("GeoPoint longitude out of bounds"));
    }
    Ok(point)
}

/// A point given as a GeoPoint or as a `[longitude, latitude]` pair (Parse Server's form).
fn point_or_pair(value: &Value, what: &str) -> Result<GeoPoint> {
    if let Some([longitude, latitude]) = value.as_array().map(Vec::as_slice) {
        let (Some(longitude), Some(latitude)) = (longitude.as_f64(), latitude.as_f64()) else {
            return Err(bad(format!("bad {what}")));
        };
        return check_point(GeoPoint {
            latitude,
            longitude,
        });
    }
    point_operand(value, what)
}

/// The geo operators of one field's constraint object (`map`), or `None` when it has none.
/// `$maxDistance*` go with `$nearSphere`; each operator may appear once per field.
pub fn parse_geo(map: &Map<String, Value>) -> Result<Vec<GeoCond>> {
    let mut conds = Vec::new();
    if let Some(point) = map.get("$nearSphere").or_else(|| map.get("$near")) {
        let point = point_operand(point, "$nearSphere")?;
        let max = |key: &str, radius: f64| -> Result<Option<f64>> {
            match map.get(key) {
                None => Ok(None),
                Some(value) => match value.as_f64() {
                    Some(distance) if distance >= 0.0 => Ok(Some(distance / radius)),
                    _ => Err(bad(format!("bad {key}"))),
                },
            }
        };
        let max_distance = max("$maxDistance", 1.0)?
            .or(max("$maxDistanceInRadians", 1.0)?)
            .or(max("$maxDistanceInMiles", EARTH_RADIUS_MILES)?)
            .or(max("$maxDistanceInKilometers", EARTH_RADIUS_KILOMETERS)?);
        conds.push(GeoCond::Near {
            point,
            max_distance,
        });
    }
    if let Some(within) = map.get("$within") {
        let corners = within
            .get("$box")
            .and_then(Value::as_array)
            .filter(|corners| corners.len() == 2)
            .ok_or_else(|| bad("bad $within: should be {$box: [southWest, northEast]}"))?;
        // Corners in either order make the same box (PostgreSQL's `box`, as Parse Server).
        let south_west = point_operand(&corners[0], "$box")?;
        let north_east = point_operand(&corners[1], "$box")?;
        conds.push(GeoCond::WithinBox {
            south_west,
            north_east,
        });
    }
    if let Some(within) = map.get("$geoWithin") {
        if let Some(polygon) = within.get("$polygon") {
            let points: Vec<GeoPoint> = match polygon {
                Value::Array(points) => points
                    .iter()
                    .map(|point| point_or_pair(point, "$geoWithin"))
                    .collect::<Result<_>>()?,
                other => polygon_of(other)
                    .ok_or_else(|| bad("bad $geoWithin value; $polygon should be Polygon object or Array of Parse.GeoPoint's"))?
                    .into_iter()
                    .map(check_point)
                    .collect::<Result<_>>()?,
            };
            if points.len() < 3 {
                return Err(bad(
                    "bad $geoWithin value; $polygon should contain at least 3 GeoPoints",
                ));
            }
            conds.push(GeoCond::WithinPolygon(points));
        } else if let Some(sphere) = within.get("$centerSphere") {
            let [center, radius] = sphere.as_array().map(Vec::as_slice).unwrap_or_default() else {
                return Err(bad(
                    "bad $geoWithin value; $centerSphere should be an array of Parse.GeoPoint and distance",
                ));
            };
            let center = point_or_pair(center, "$centerSphere")?;
            let radius = radius
                .as_f64()
                .filter(|radius| *radius >= 0.0)
                .ok_or_else(|| bad("bad $geoWithin value; $centerSphere distance invalid"))?;
            conds.push(GeoCond::WithinSphere { center, radius });
        } else {
            return Err(bad(
                "bad $geoWithin value: should have $polygon or $centerSphere",
            ));
        }
    }
    if let Some(intersects) = map.get("$geoIntersects") {
        let point = intersects
            .get("$point")
            .ok_or_else(|| bad("bad $geoIntersect value; $point should be GeoPoint"))?;
        conds.push(GeoCond::PolygonContains(point_operand(
            point,
            "$geoIntersects",
        )?));
    }
    Ok(conds)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn point(latitude: f64, longitude: f64) -> GeoPoint {
        GeoPoint {
            latitude,
            longitude,
        }
    }

    #[test]
    fn distances_are_great_circle_radians() {
        let sf = point(37.7749, -122.4194);
        let la = point(34.0522, -118.2437);
        let km = distance(sf, la) * EARTH_RADIUS_KILOMETERS;
        assert!((km - 559.1).abs() < 1.0, "{km}");
        assert_eq!(distance(sf, sf), 0.0);
        let antipode = distance(point(0.0, 0.0), point(0.0, 180.0));
        assert!((antipode - std::f64::consts::PI).abs() < 1e-12);
    }

    #[test]
    fn polygons_and_boxes() {
        let square = [
            point(0.0, 0.0),
            point(0.0, 10.0),
            point(10.0, 10.0),
            point(10.0, 0.0),
        ];
        assert!(point_in_polygon(point(5.0, 5.0), &square));
        assert!(!point_in_polygon(point(15.0, 5.0), &square));
        assert!(!point_in_polygon(point(5.0, -1.0), &square));
        // Edges and vertices are inside.
        assert!(point_in_polygon(point(0.0, 0.0), &square));
        assert!(point_in_polygon(point(10.0, 5.0), &square));
        assert!(in_box(point(5.0, 5.0), point(0.0, 0.0), point(10.0, 10.0)));
        assert!(!in_box(
            point(5.0, 11.0),
            point(0.0, 0.0),
            point(10.0, 10.0)
        ));
    }

    #[test]
    fn operators_parse_as_parse_server_reads_them() {
        let here = json!({"__type": "GeoPoint", "latitude": 10.0, "longitude": 20.0});
        let conds = parse_geo(
            json!({"$nearSphere": here, "$maxDistanceInKilometers": 6371.0})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            conds,
            vec![GeoCond::Near {
                point: point(10.0, 20.0),
                max_distance: Some(1.0)
            }]
        );
        let sphere = parse_geo(
            json!({"$geoWithin": {"$centerSphere": [[20.0, 10.0], 0.5]}})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            sphere,
            vec![GeoCond::WithinSphere {
                center: point(10.0, 20.0),
                radius: 0.5
            }]
        );
        for bad in [
            json!({"$nearSphere": {"__type": "GeoPoint", "latitude": 91.0, "longitude": 0.0}}),
            json!({"$nearSphere": here, "$maxDistance": -1}),
            json!({"$geoWithin": {"$polygon": [here, here]}}),
            json!({"$geoWithin": {"$centerSphere": [here]}}),
            json!({"$within": {"$box": [here]}}),
            json!({"$geoIntersects": {"$point": 1}}),
        ] {
            assert!(parse_geo(bad.as_object().unwrap()).is_err(), "{bad}");
        }
    }
}
