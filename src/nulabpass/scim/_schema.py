"""The SCIM schemas nulabpass supports (RFC 7643), as data.

One table of :class:`Attribute` rows per schema drives everything that depends on
attribute characteristics: the ``/Schemas`` discovery documents, which attributes a
filter or ``sortBy`` may name and whether their comparisons are case-exact, which
attributes are returned, and the mutability rules of PUT and PATCH. Discovery therefore
describes exactly what the service does.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = [
    "ENTERPRISE_USER",
    "GROUP",
    "GROUP_SCHEMA",
    "LIST_RESPONSE",
    "PATCH_OP",
    "SEARCH_REQUEST",
    "USER",
    "USER_SCHEMA",
    "Attribute",
    "ResourceSchema",
    "Schema",
]

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


@attrs.frozen(slots=True)
class Attribute:
    """One attribute and its characteristics (RFC 7643 §2.2)."""

    name: str
    type: str
    description: str
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    #: Whether filters and ``sortBy`` may name it (the store indexes or can evaluate it).
    filterable: bool = True

    @property
    def key(self) -> str:
        """The case-folded name used for lookups."""
        return self.name.lower()

    def sub(self, name: str) -> Attribute | None:
        """The sub-attribute called ``name`` (case-insensitively)."""
        lowered = name.lower()
        for attr in self.sub_attributes:
            if attr.key == lowered:
                return attr
        return None

    def to_json(self) -> dict[str, object]:
        """The attribute's definition in a ``/Schemas`` document."""
        out: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "mutability": self.mutability,
            "returned": self.returned,
        }
        if self.type in {"string", "reference", "binary"}:
            out["caseExact"] = self.case_exact
        if self.type not in {"complex", "boolean"}:
            out["uniqueness"] = self.uniqueness
        if self.canonical_values:
            out["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            out["subAttributes"] = [a.to_json() for a in self.sub_attributes]
        return out


@attrs.frozen(slots=True)
class Schema:
    """A schema: its URN, name and attributes."""

    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def get(self, name: str) -> Attribute | None:
        """The attribute called ``name`` (case-insensitively)."""
        lowered = name.lower()
        for attr in self.attributes:
            if attr.key == lowered:
                return attr
        return None

    def to_json(self, base_url: str) -> dict[str, object]:
        """The ``/Schemas/<id>`` document."""
        return {
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_json() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{base_url}/Schemas/{self.id}"},
        }


def _s(name: str, description: str, **kw: object) -> Attribute:
    return Attribute(name, "string", description, **kw)  # type: ignore[arg-type]


_MEMBER_REF = ("User", "Group")


def _values(
    name: str,
    description: str,
    types: tuple[str, ...],
    *,
    value: Attribute | None = None,
) -> Attribute:
    # These multi-valued attributes are stored as one JSON document per user, so no
    # store can filter or sort on them through an index: they are declared unfilterable
    # and a filter naming them is an invalidFilter error (RFC 7644 §3.4.2.2).
    return Attribute(
        name,
        "complex",
        description,
        multi_valued=True,
        filterable=False,
        sub_attributes=(
            value or _s("value", "The value.", filterable=False),
            _s("display", "A label for display.", filterable=False),
            _s(
                "type",
                "A label for the value's function.",
                canonical_values=types,
                filterable=False,
            ),
            Attribute("primary", "boolean", "The primary value.", filterable=False),
        ),
    )


_USER_ATTRS = (
    _s(
        "userName",
        "The user's email address on a verified domain of the organization; unique.",
        required=True,
        uniqueness="server",
    ),
    Attribute(
        "name",
        "complex",
        "The components of the user's name.",
        sub_attributes=(
            _s("formatted", "The full name for display."),
            _s("familyName", "The family name."),
            _s("givenName", "The given name."),
            _s("middleName", "The middle name."),
            _s("honorificPrefix", "Honorific prefix, e.g. Ms."),
            _s("honorificSuffix", "Honorific suffix, e.g. III."),
        ),
    ),
    _s("displayName", "The name shown in the products."),
    _s("nickName", "The casual name of the user."),
    Attribute(
        "profileUrl",
        "reference",
        "A URI of the user's online profile.",
        reference_types=("external",),
    ),
    _s("title", "The user's title, e.g. Vice President."),
    _s(
        "userType",
        "The relationship to the organization, e.g. Employee; with role sync on, admin "
        "also makes the member an admin.",
    ),
    _s("preferredLanguage", "The user's language (BCP 47 tag); sets the products' language."),
    _s("locale", "The user's locale for formatting (BCP 47 tag)."),
    _s("timezone", "The user's IANA time zone, e.g. Asia/Tokyo."),
    Attribute("active", "boolean", "Whether the account may sign in."),
    Attribute(
        "emails",
        "complex",
        "Email addresses of the user.",
        multi_valued=True,
        sub_attributes=(
            _s("value", "The email address."),
            _s("display", "A label for display."),
            _s("type", "work, home or other.", canonical_values=("work", "home", "other")),
            Attribute("primary", "boolean", "The primary address."),
        ),
    ),
    _values(
        "phoneNumbers",
        "Phone numbers of the user.",
        ("work", "home", "mobile", "fax", "pager", "other"),
    ),
    _values(
        "ims",
        "Instant messaging addresses of the user.",
        ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
    ),
    _values(
        "photos",
        "URIs of images of the user.",
        ("photo", "thumbnail"),
        value=Attribute(
            "value",
            "reference",
            "The URI of the image.",
            reference_types=("external",),
            filterable=False,
        ),
    ),
    Attribute(
        "addresses",
        "complex",
        "Physical mailing addresses of the user.",
        multi_valued=True,
        filterable=False,
        sub_attributes=(
            _s("formatted", "The full mailing address.", filterable=False),
            _s("streetAddress", "The street address.", filterable=False),
            _s("locality", "The city or locality.", filterable=False),
            _s("region", "The state or region.", filterable=False),
            _s("postalCode", "The postal code.", filterable=False),
            _s("country", "The country (ISO 3166-1 alpha-2 code).", filterable=False),
            _s(
                "type",
                "work, home or other.",
                canonical_values=("work", "home", "other"),
                filterable=False,
            ),
            Attribute("primary", "boolean", "The primary address.", filterable=False),
        ),
    ),
    Attribute(
        "groups",
        "complex",
        "The groups (teams) the user belongs to.",
        multi_valued=True,
        mutability="readOnly",
        filterable=False,
        sub_attributes=(
            _s("value", "The group's id.", mutability="readOnly", case_exact=True),
            Attribute(
                "$ref",
                "reference",
                "The group's URI.",
                mutability="readOnly",
                reference_types=("Group",),
                filterable=False,
            ),
            _s("display", "The group's name.", mutability="readOnly"),
            _s("type", "direct.", mutability="readOnly", canonical_values=("direct",)),
        ),
    ),
    _values("entitlements", "Entitlements of the user (kept, never enforced).", ()),
    _values(
        "roles",
        "Roles of the user; with role sync on, a role whose value is admin makes the "
        "member an admin.",
        (),
    ),
    _values(
        "x509Certificates",
        "X.509 certificates of the user (base64 DER).",
        (),
        value=Attribute(
            "value",
            "binary",
            "The DER certificate, base64-encoded.",
            case_exact=True,
            filterable=False,
        ),
    ),
)

_ENTERPRISE_ATTRS = (
    _s("employeeNumber", "Numeric or alphanumeric identifier assigned by the organization."),
    _s("costCenter", "The cost center."),
    _s("organization", "The organization."),
    _s("division", "The division."),
    _s("department", "The department."),
    Attribute(
        "manager",
        "complex",
        "The user's manager.",
        sub_attributes=(
            _s("value", "The manager's id.", case_exact=True),
            Attribute(
                "$ref",
                "reference",
                "The manager's URI.",
                reference_types=("User",),
                filterable=False,
            ),
        ),
    ),
)

_GROUP_ATTRS = (
    _s("displayName", "The team's name, unique in the organization.", required=True),
    Attribute(
        "members",
        "complex",
        "Managed accounts in the team.",
        multi_valued=True,
        sub_attributes=(
            _s("value", "The member's id.", mutability="immutable", case_exact=True),
            Attribute(
                "$ref",
                "reference",
                "The member's URI.",
                mutability="immutable",
                reference_types=_MEMBER_REF,
                filterable=False,
            ),
            _s(
                "type",
                "User.",
                mutability="immutable",
                canonical_values=("User",),
                filterable=False,
            ),
        ),
    ),
)

USER_SCHEMA = Schema(USER, "User", "User Account", _USER_ATTRS)
ENTERPRISE_SCHEMA = Schema(ENTERPRISE_USER, "EnterpriseUser", "Enterprise User", _ENTERPRISE_ATTRS)
GROUP_SCHEMA = Schema(GROUP, "Group", "Group", _GROUP_ATTRS)
SCHEMAS: Mapping[str, Schema] = {s.id: s for s in (USER_SCHEMA, ENTERPRISE_SCHEMA, GROUP_SCHEMA)}

#: Attributes every resource has (RFC 7643 §3.1), which /Schemas does not list.
COMMON = (
    _s("id", "Identifier.", case_exact=True, mutability="readOnly", returned="always"),
    _s("externalId", "Identifier in the provisioning client.", case_exact=True),
    Attribute(
        "meta",
        "complex",
        "Resource metadata.",
        mutability="readOnly",
        sub_attributes=(
            _s("resourceType", "The resource type.", mutability="readOnly", filterable=False),
            Attribute("created", "dateTime", "Created at.", mutability="readOnly"),
            Attribute("lastModified", "dateTime", "Last modified at.", mutability="readOnly"),
            _s("location", "The resource URI.", mutability="readOnly", filterable=False),
            _s(
                "version",
                "The resource's ETag.",
                mutability="readOnly",
                case_exact=True,
                filterable=False,
            ),
        ),
    ),
)


@attrs.frozen(slots=True)
class ResourceSchema:
    """A resource type: its endpoint, core schema and extensions."""

    name: str
    endpoint: str
    core: Schema
    extensions: tuple[Schema, ...] = ()

    def resolve(self, urn: str | None, attr: str) -> tuple[Schema | None, Attribute | None]:
        """The schema and attribute a path names (``urn`` ``None``: core or common)."""
        lowered = attr.lower()
        if urn is None or urn.lower() == self.core.id.lower():
            for common in COMMON:
                if common.key == lowered:
                    return None, common
            return self.core, self.core.get(attr)
        for ext in self.extensions:
            if ext.id.lower() == urn.lower():
                return ext, ext.get(attr)
        return None, None

    def extension(self, urn: str) -> Schema | None:
        """The extension schema with this URN (case-insensitively)."""
        for ext in self.extensions:
            if ext.id.lower() == urn.lower():
                return ext
        return None

    def resource_type_json(self, base_url: str) -> dict[str, object]:
        """The ``/ResourceTypes/<name>`` document."""
        return {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": f"{self.name} resources",
            "schema": self.core.id,
            "schemaExtensions": [{"schema": e.id, "required": False} for e in self.extensions],
            "meta": {
                "resourceType": "ResourceType",
                "location": f"{base_url}/ResourceTypes/{self.name}",
            },
        }


USER_RESOURCE = ResourceSchema("User", "/Users", USER_SCHEMA, (ENTERPRISE_SCHEMA,))
GROUP_RESOURCE = ResourceSchema("Group", "/Groups", GROUP_SCHEMA)
RESOURCES = (USER_RESOURCE, GROUP_RESOURCE)


def service_provider_config(base_url: str, *, max_results: int) -> dict[str, object]:
    """The ``/ServiceProviderConfig`` document: what this service supports."""
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://nulabpass.readthedocs.io/scim/",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "A per-organization SCIM token created by an admin.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }
